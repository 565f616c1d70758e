import { createPublicKey, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import Router from '@koa/router';
import { jwtVerify, SignJWT } from 'jose';
import Koa, { type Context, type Next } from 'koa';
import Provider, { type Interaction, type ProviderContext } from 'oidc-provider';

/** How the IdP ends an authorization: sign the user in as `login` (the ID token's `sub`), or refuse. */
export type FakeIdpAnswer = { login: string } | { error: string; description?: string };

/** Options of {@link startFakeIdp}. */
export interface FakeIdpOptions {
  /** Redirect URIs of the one client, compared exactly. */
  redirectUris: string[];
  /** Loopback port to listen on, so a test can name the issuer before the gateway starts. Default: a free one. */
  port?: number;
  /** Default `consent-gateway`. */
  clientId?: string;
  /** The client's secret (`client_secret_basic`); `null` registers a public client (PKCE only). Default: generated. */
  clientSecret?: string | null;
  /** Finish every authorization at once, without a page, as this user. */
  autoLogin?: string;
  /**
   * Issue ID-JAGs (Identity Assertion JWT Authorization Grants) to the client: RFC 8693 token
   * exchanges of its ID tokens with `requested_token_type=urn:ietf:params:oauth:token-type:id-jag`,
   * for the authorization servers named here (`audience` issuer → the client's id there). Default: none.
   */
  idJag?: { clients: Record<string, string>; lifetimeSeconds?: number };
}

/** Live counters of a fake IdP. */
export interface FakeIdpCounters {
  /** Requests to the authorization endpoint. */
  authorizations: number;
  /** Successful `authorization_code` grants. */
  codeExchanges: number;
  /** Token endpoint requests answered with an error. */
  failedTokenRequests: number;
  /** ID-JAGs issued. */
  idJags: number;
  /** ID-JAG requests refused. */
  refusedIdJags: number;
}

/** A running OpenID Provider on loopback. */
export interface FakeIdp {
  /** `http://127.0.0.1:<port>`. */
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret: string | undefined;
  readonly counters: Readonly<FakeIdpCounters>;
  /** Change how authorizations end; `undefined` shows a sign-in form instead. */
  answerWith(answer: FakeIdpAnswer | undefined): void;
  /** Refuse ID-JAG requests for these users with this error (policy); `undefined` refuses none. */
  refuseIdJags(refusal: { subjects: string[]; error: string } | undefined): void;
  /** The claims of the last ID-JAG issued, and the ID-JAG itself (`jwt`). */
  readonly lastIdJag: (Record<string, unknown> & { jwt: string }) | undefined;
  /**
   * Follow an authorization request (OpenID Connect Core 1.0 §3.1.2.1) through the IdP without a
   * browser, keeping its cookies, and return the URL it finally redirects to: the client's
   * redirect URI with `code`, `state` and `iss`, or with `error`. Needs an answer set.
   */
  completeAuthorization(authorizationUrl: string | URL): Promise<URL>;
  close(): Promise<void>;
}

const maxHops = 10;

/**
 * Starts an OpenID Provider (`oidc-provider`) on loopback with one static client, the `openid`
 * scope, PKCE S256 required, ES256-signed ID tokens with `sub` as the only claim, and `iss` in
 * authorization responses (RFC 9207). Authorizations end as {@link FakeIdpOptions.autoLogin} says.
 */
export async function startFakeIdp(options: FakeIdpOptions): Promise<FakeIdp> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const clientId = options.clientId ?? 'consent-gateway';
  const clientSecret = options.clientSecret === null ? undefined : (options.clientSecret ?? randomBytes(24).toString('base64url'));
  const counters: FakeIdpCounters = { authorizations: 0, codeExchanges: 0, failedTokenRequests: 0, idJags: 0, refusedIdJags: 0 };
  let idJagRefusal: { subjects: string[]; error: string } | undefined;
  let lastIdJag: (Record<string, unknown> & { jwt: string }) | undefined;
  let answer: FakeIdpAnswer | undefined = options.autoLogin === undefined ? undefined : { login: options.autoLogin };

  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const kid = randomUUID();
  // Cookies ignore ports: a prefix per port keeps this IdP's cookies apart from other loopback servers'.
  const cookiePrefix = `fake_idp_${new URL(issuer).port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        redirect_uris: options.redirectUris,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        id_token_signed_response_alg: 'ES256',
        ...(clientSecret ? { client_secret: clientSecret, token_endpoint_auth_method: 'client_secret_basic' } : { token_endpoint_auth_method: 'none' }),
      },
    ],
    adapter: memoryAdapter(),
    jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid }] },
    enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
    cookies: {
      keys: [randomBytes(32).toString('base64url')],
      names: { session: `${cookiePrefix}_session`, interaction: `${cookiePrefix}_interaction`, resume: `${cookiePrefix}_resume` },
    },
    scopes: ['openid'],
    claims: { openid: ['sub'] },
    responseTypes: ['code'],
    pkce: { required: () => true },
    findAccount: (_ctx: unknown, sub: string) => ({ accountId: sub, claims: () => ({ sub }) }),
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    features: { devInteractions: { enabled: false }, userinfo: { enabled: false } },
    ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
    renderError: async (ctx: ProviderContext, out: { error: string; error_description?: string }) => {
      ctx.type = 'html';
      ctx.body = page('Error', `<h1>${escapeHtml(out.error)}</h1><p>${escapeHtml(out.error_description ?? '')}</p>`);
    },
  });
  provider.use(async function count(ctx: ProviderContext, next: () => Promise<void>) {
    await next();
    if (ctx.oidc?.route === 'authorization') counters.authorizations += 1;
    if (ctx.oidc?.route === 'token') {
      if (ctx.status === 200) counters.codeExchanges += 1;
      else counters.failedTokenRequests += 1;
    }
  });

  const router = new Router();
  router.get('/interaction/:uid', async function interaction(ctx) {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (answer === undefined) {
      ctx.type = 'html';
      ctx.body = page(
        'Sign in',
        `<h1>Sign in</h1><form method="post" action="/interaction/${encodeURIComponent(details.uid)}">
<label for="login">User name</label><input id="login" name="login" required><button type="submit">Sign in</button></form>`,
      );
      return;
    }
    await finish(ctx, details, answer);
  });
  router.post('/interaction/:uid', async function signIn(ctx) {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const login = new URLSearchParams(await readBody(ctx)).get('login')?.trim();
    if (!login) {
      ctx.status = 400;
      ctx.body = 'login is required';
      return;
    }
    await finish(ctx, details, { login });
  });

  async function finish(ctx: Context, details: Interaction, how: FakeIdpAnswer): Promise<void> {
    if ('error' in how) {
      await provider.interactionFinished(ctx.req, ctx.res, { error: how.error, error_description: how.description ?? 'The user refused' }, { mergeWithLastSubmission: false });
    } else {
      const grant = new provider.Grant({ accountId: how.login, clientId: String(details.params.client_id) });
      grant.addOIDCScope('openid');
      const grantId = await grant.save();
      await provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: how.login }, consent: { grantId } }, { mergeWithLastSubmission: false });
    }
    // interactionFinished has written the redirect itself.
    ctx.respond = false;
  }

  // RFC 8693 token exchange for an ID-JAG; every other token request goes on to the provider.
  async function idJagExchange(ctx: Context, next: Next): Promise<void> {
    if (!options.idJag || ctx.method !== 'POST' || ctx.path !== '/token') return next();
    const raw = await readBody(ctx);
    const form = new URLSearchParams(raw);
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:token-exchange') {
      // oidc-provider reads an already-read body from req.body.
      (ctx.req as typeof ctx.req & { body?: string }).body = raw;
      return next();
    }
    const refuse = (status: number, error: string, description: string) => {
      counters.refusedIdJags += 1;
      ctx.status = status;
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { error, error_description: description };
    };
    const basic = /^Basic ([A-Za-z0-9+/=]+)$/.exec(ctx.get('authorization'));
    const [id, secret] = basic?.[1] ? Buffer.from(basic[1], 'base64').toString('utf8').split(':').map((part) => decodeURIComponent(part)) : [form.get('client_id'), form.get('client_secret')];
    if (id !== clientId || (clientSecret !== undefined && secret !== clientSecret)) return refuse(401, 'invalid_client', 'client authentication failed');
    if (form.get('requested_token_type') !== 'urn:ietf:params:oauth:token-type:id-jag') return refuse(400, 'invalid_request', 'only ID-JAGs are issued here');
    if (form.get('subject_token_type') !== 'urn:ietf:params:oauth:token-type:id_token') return refuse(400, 'invalid_request', 'the subject token must be an ID token');
    let sub: string | undefined;
    try {
      const verified = await jwtVerify(form.get('subject_token') ?? '', createPublicKey(privateKey), { issuer, audience: clientId });
      sub = verified.payload.sub;
    } catch {
      sub = undefined;
    }
    if (!sub) return refuse(400, 'invalid_grant', 'the subject token is not a valid ID token of this IdP for this client');
    const audience = form.get('audience') ?? '';
    const clientAtAudience = options.idJag.clients[audience];
    if (!clientAtAudience) return refuse(400, 'invalid_target', 'no ID-JAGs for that audience');
    if (idJagRefusal?.subjects.includes(sub)) return refuse(400, idJagRefusal.error, 'the policy does not grant this user access');
    const lifetime = options.idJag.lifetimeSeconds ?? 300;
    const claims: Record<string, unknown> = { client_id: clientAtAudience, jti: randomUUID(), ...(form.get('resource') ? { resource: form.get('resource') } : {}), ...(form.get('scope') ? { scope: form.get('scope') } : {}) };
    const jwt = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', typ: 'oauth-id-jag+jwt', kid })
      .setIssuer(issuer)
      .setSubject(sub)
      .setAudience(audience)
      .setIssuedAt()
      .setExpirationTime(`${lifetime}s`)
      .sign(privateKey);
    counters.idJags += 1;
    lastIdJag = { ...claims, iss: issuer, sub, aud: audience, jwt };
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { access_token: jwt, issued_token_type: 'urn:ietf:params:oauth:token-type:id-jag', token_type: 'N_A', expires_in: lifetime, ...(form.get('scope') ? { scope: form.get('scope') } : {}) };
  }

  const handOver = provider.callback();
  const app = new Koa();
  app.use(idJagExchange);
  app.use(router.routes());
  app.use(function handOverToProvider(ctx: Context, _next: Next) {
    ctx.respond = false;
    return handOver(ctx.req, ctx.res);
  });
  server.on('request', app.callback());

  return {
    issuer,
    clientId,
    clientSecret,
    counters,
    answerWith(next) {
      answer = next;
    },
    refuseIdJags(refusal) {
      idJagRefusal = refusal;
    },
    get lastIdJag() {
      return lastIdJag;
    },
    async completeAuthorization(authorizationUrl) {
      const cookies = new Map<string, string>();
      let url = new URL(authorizationUrl);
      for (let hop = 0; hop < maxHops; hop += 1) {
        if (url.origin !== issuer) return url;
        const response = await fetch(url, {
          redirect: 'manual',
          headers: { cookie: [...cookies].map(([name, value]) => `${name}=${value}`).join('; ') },
        });
        keepCookies(cookies, response.headers.getSetCookie());
        const location = response.headers.get('location');
        const body = await response.text();
        if (location === null) throw new Error(`the IdP stopped at ${url.href} with ${response.status}: ${body.slice(0, 300)}`);
        url = new URL(location, url);
      }
      throw new Error(`the IdP did not redirect back within ${maxHops} hops`);
    },
    async close() {
      const closed = new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
      server.closeAllConnections();
      await closed;
    },
  };
}

// oidc-provider's own memory adapter warns on every start; this one holds the few models a test makes.
function memoryAdapter() {
  const entries = new Map<string, { payload: Record<string, unknown>; expiresAt: number }>();
  const live = (key: string) => {
    const entry = entries.get(key);
    if (entry && entry.expiresAt <= Date.now()) entries.delete(key);
    return entries.get(key);
  };
  return class MemoryAdapter {
    constructor(private readonly model: string) {}

    async upsert(id: string, payload: Record<string, unknown>, expiresIn?: number): Promise<void> {
      entries.set(`${this.model}:${id}`, { payload, expiresAt: expiresIn === undefined ? Infinity : Date.now() + expiresIn * 1000 });
    }

    async find(id: string): Promise<Record<string, unknown> | undefined> {
      return live(`${this.model}:${id}`)?.payload;
    }

    async findByUid(uid: string): Promise<Record<string, unknown> | undefined> {
      const key = [...entries.keys()].find((candidate) => candidate.startsWith(`${this.model}:`) && entries.get(candidate)?.payload.uid === uid);
      return key === undefined ? undefined : live(key)?.payload;
    }

    async findByUserCode(): Promise<undefined> {
      return undefined;
    }

    async consume(id: string): Promise<void> {
      const entry = live(`${this.model}:${id}`);
      if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
    }

    async destroy(id: string): Promise<void> {
      entries.delete(`${this.model}:${id}`);
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      for (const [key, entry] of entries) if (key.startsWith(`${this.model}:`) && entry.payload.grantId === grantId) entries.delete(key);
    }
  };
}

// Path-blind: every cookie of the IdP goes with every request to it, which the provider tolerates.
function keepCookies(cookies: Map<string, string>, setCookies: string[]): void {
  for (const line of setCookies) {
    const [pair = '', ...attributes] = line.split(';');
    const separator = pair.indexOf('=');
    const name = pair.slice(0, separator).trim();
    const value = pair.slice(separator + 1).trim();
    const expired = value === '' || attributes.some((attribute) => /^\s*max-age\s*=\s*0\s*$/i.test(attribute) || (/^\s*expires\s*=/i.test(attribute) && Date.parse(attribute.split('=')[1] ?? '') <= Date.now()));
    if (expired) cookies.delete(name);
    else cookies.set(name, value);
  }
}

async function readBody(ctx: Context): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 16 * 1024) ctx.throw(413, 'form too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title></head><body>${body}</body></html>`;
}

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

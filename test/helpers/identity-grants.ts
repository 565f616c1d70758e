import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, createRemoteJWKSet, EmbeddedJWK, jwtVerify, type JWTPayload } from 'jose';

/**
 * An IdP an upstream's authorization server trusts directly: ID tokens it issued (for
 * `idTokenAudience`) are taken in RFC 8693 token exchanges, ID-JAGs it issued for this server in
 * RFC 7523 JWT bearer grants.
 */
export interface TrustedIdp {
  issuer: string;
  /** Default `<issuer>/jwks` (oidc-provider's route). */
  jwksUri?: string;
  /** The `aud` a subject ID token must carry: the client the IdP issued it to. Default: any. */
  idTokenAudience?: string;
  /** Users (`sub`) refused with `invalid_grant` whatever they present. Default: none. */
  refusedSubjects?: string[];
}

/** Live counters of the identity grants. */
export interface IdentityGrantCounters {
  /** Successful RFC 8693 token exchanges. */
  tokenExchanges: number;
  /** Successful RFC 7523 JWT bearer grants (ID-JAG). */
  jwtBearerGrants: number;
  /** Identity grants refused. */
  refusedIdentityGrants: number;
}

/** What the grants need from the fake upstream's authorization server. */
export interface IdentityGrantHost {
  issuer: string;
  mcpUrl: string;
  scopes: string[];
  client: { clientId: string; clientSecret: string };
  counters: IdentityGrantCounters;
  /** Take identity grants only with a DPoP proof (RFC 9449) and bind the tokens to its key. */
  requireDpop: boolean;
  /** Issues an access token for `accountId` to the static client, for the MCP URL, bound to the key `jkt` when given. */
  issueAccessToken(accountId: string, scope: string, jkt: string | undefined): Promise<{ token: string; expiresIn: number }>;
}

/**
 * Checks a DPoP proof (RFC 9449 §4.3): a `dpop+jwt` signed by the key in its header, for `htm` and
 * `htu`, issued within the last minute, with a `jti`, and `ath` the token's hash when a token goes
 * with it. Returns the key's thumbprint (RFC 7638), or undefined when the proof fails.
 */
export async function verifyDpopProof(proof: string | string[] | undefined, expected: { htm: string; htu: string; accessToken?: string }): Promise<string | undefined> {
  if (typeof proof !== 'string') return undefined;
  try {
    const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', maxTokenAge: 60 });
    if (payload.htm !== expected.htm || payload.htu !== expected.htu || typeof payload.jti !== 'string') return undefined;
    if (expected.accessToken !== undefined && payload.ath !== createHash('sha256').update(expected.accessToken).digest('base64url')) return undefined;
    return await calculateJwkThumbprint(protectedHeader.jwk!);
  } catch {
    return undefined;
  }
}

const tokenExchange = 'urn:ietf:params:oauth:grant-type:token-exchange';
const jwtBearer = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const idTokenType = 'urn:ietf:params:oauth:token-type:id_token';

/**
 * Returns a request handler for the token endpoint that answers the two identity grants and passes
 * every other request on (false), with its body kept for the provider to read.
 */
export function identityGrants(idp: TrustedIdp, host: IdentityGrantHost) {
  const jwks = createRemoteJWKSet(new URL(idp.jwksUri ?? `${idp.issuer}/jwks`));

  function refuse(res: ServerResponse, error: string, description: string): void {
    host.counters.refusedIdentityGrants += 1;
    send(res, error === 'invalid_client' ? 401 : 400, { error, error_description: description });
  }

  function authenticated(req: IncomingMessage, form: URLSearchParams): boolean {
    const basic = /^Basic ([A-Za-z0-9+/=]+)$/.exec(req.headers.authorization ?? '');
    if (basic?.[1]) {
      const [id, secret] = Buffer.from(basic[1], 'base64').toString('utf8').split(':').map((part) => decodeURIComponent(part));
      return id === host.client.clientId && secret === host.client.clientSecret;
    }
    return form.get('client_id') === host.client.clientId && form.get('client_secret') === host.client.clientSecret;
  }

  function grantedScope(form: URLSearchParams, asserted?: unknown): string {
    const asked = (form.get('scope') ?? (typeof asserted === 'string' ? asserted : '')).split(' ').filter(Boolean);
    const known = asked.filter((scope) => host.scopes.includes(scope));
    return (known.length > 0 ? known : host.scopes).join(' ');
  }

  async function verified(token: string, options: { audience?: string; typ?: string }): Promise<JWTPayload | undefined> {
    try {
      const { payload } = await jwtVerify(token, jwks, { issuer: idp.issuer, ...(options.audience ? { audience: options.audience } : {}), ...(options.typ ? { typ: options.typ } : {}) });
      return payload;
    } catch {
      return undefined;
    }
  }

  async function answer(res: ServerResponse, accountId: string, scope: string, jkt: string | undefined, extra: Record<string, string> = {}): Promise<void> {
    const { token, expiresIn } = await host.issueAccessToken(accountId, scope, jkt);
    send(res, 200, { access_token: token, token_type: jkt ? 'DPoP' : 'Bearer', expires_in: expiresIn, scope, ...extra });
  }

  return async function handleIdentityGrant(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    if (req.method !== 'POST' || new URL(req.url ?? '/', host.issuer).pathname !== '/token') return false;
    const raw = await readAll(req);
    const form = new URLSearchParams(raw);
    const grantType = form.get('grant_type');
    if (grantType !== tokenExchange && grantType !== jwtBearer) {
      // oidc-provider reads an already-read body from req.body.
      (req as IncomingMessage & { body?: string }).body = raw;
      return false;
    }
    if (!authenticated(req, form)) {
      refuse(res, 'invalid_client', 'client authentication failed');
      return true;
    }
    const jkt = host.requireDpop ? await verifyDpopProof(req.headers.dpop, { htm: 'POST', htu: `${host.issuer}/token` }) : undefined;
    if (host.requireDpop && !jkt) return (refuse(res, 'invalid_dpop_proof', 'a valid DPoP proof is required'), true);
    if (grantType === tokenExchange) {
      if (form.get('subject_token_type') !== idTokenType) return (refuse(res, 'invalid_request', 'subject_token_type must be an ID token'), true);
      const resource = form.get('resource');
      if (resource !== null && resource !== host.mcpUrl) return (refuse(res, 'invalid_target', 'unknown resource'), true);
      const audience = form.get('audience');
      if (audience !== null && audience !== host.issuer) return (refuse(res, 'invalid_target', 'unknown audience'), true);
      const claims = await verified(form.get('subject_token') ?? '', idp.idTokenAudience ? { audience: idp.idTokenAudience } : {});
      if (!claims?.sub) return (refuse(res, 'invalid_grant', 'the subject token is not a valid ID token of the trusted IdP'), true);
      if (idp.refusedSubjects?.includes(claims.sub)) return (refuse(res, 'invalid_grant', 'this user has no access here'), true);
      host.counters.tokenExchanges += 1;
      await answer(res, claims.sub, grantedScope(form), jkt, { issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' });
      return true;
    }
    const claims = await verified(form.get('assertion') ?? '', { audience: host.issuer, typ: 'oauth-id-jag+jwt' });
    if (!claims?.sub) return (refuse(res, 'invalid_grant', 'the assertion is not a valid ID-JAG of the trusted IdP for this server'), true);
    if (idp.refusedSubjects?.includes(claims.sub)) return (refuse(res, 'invalid_grant', 'this user has no access here'), true);
    if (claims.client_id !== host.client.clientId) return (refuse(res, 'invalid_grant', 'the ID-JAG was issued for another client'), true);
    if (claims.resource !== undefined && claims.resource !== host.mcpUrl) return (refuse(res, 'invalid_grant', 'the ID-JAG is for another resource'), true);
    host.counters.jwtBearerGrants += 1;
    await answer(res, claims.sub, grantedScope(form, claims.scope), jkt);
    return true;
  };
}

async function readAll(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

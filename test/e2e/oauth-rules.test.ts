import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { rootCertificates } from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoUpstream, type DemoUpstream } from '../../server/demo/demo-upstream.js';
import { chromiumAvailable, launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { startCimdHost, type CimdHost } from '../helpers/cimd-host.js';
import {
  authorizationUrl,
  ConsentDriver,
  createPkce,
  initializeMcp,
  postForm,
  registerClient,
  type AuthorizationParams,
  type Pkce,
} from '../helpers/consent-driver.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startCallbackServer, type CallbackServer } from '../helpers/mcp-client.js';
import { temporalUnavailable } from '../helpers/temporal.js';

const run = promisify(execFile);
const skip = Boolean(temporalUnavailable);
const noBrowser = !chromiumAvailable() && process.env.CI !== 'true';

/** An https server on 127.0.0.1 whose certificate names `127.0.0.1` and `localhost`: a CIMD host on a private address. */
interface PrivateDocumentHost {
  port: number;
  ca: string;
  hits: Map<string, number>;
  serve(pathname: string, body: unknown): void;
  close(): Promise<void>;
}

async function startPrivateDocumentHost(): Promise<PrivateDocumentHost> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cg-private-cimd-'));
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ]);
  const [key, cert] = await Promise.all([readFile(keyFile, 'utf8'), readFile(certFile, 'utf8')]);
  await rm(dir, { recursive: true, force: true });
  const documents = new Map<string, string>();
  const hits = new Map<string, number>();
  const server: Server = createServer({ key, cert }, (req, res) => {
    const pathname = new URL(req.url ?? '/', 'https://x').pathname;
    hits.set(pathname, (hits.get(pathname) ?? 0) + 1);
    const body = documents.get(pathname);
    if (body === undefined) res.writeHead(404).end();
    else res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    ca: cert,
    hits,
    serve: (pathname, body) => documents.set(pathname, JSON.stringify(body)),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// Node 24 (undici 7) keeps a dispatcher under `.2`, which the OAuth server's guarded fetch is built
// from, and one under `.1`, which the plain fetch uses; Node 20 and 22 have `.1` only.
const globalDispatchers = [Symbol.for('undici.globalDispatcher.2'), Symbol.for('undici.globalDispatcher.1')];

/**
 * Makes every `fetch` in this process trust `ca` as well, including the address-guarded one the
 * OAuth server builds from the global dispatcher's class on its first metadata fetch. Without it,
 * TLS alone would stop a fetch of the private host, and "no fetch happened" would prove nothing
 * about the private-address guard. Returns the undo.
 */
function trustInFetch(ca: string): () => void {
  void Response; // loads Node's fetch, which installs the global dispatcher
  const globals = globalThis as unknown as Record<symbol, object | undefined>;
  const present = globalDispatchers.filter((symbol) => globals[symbol]);
  if (present.length === 0) throw new Error('no global fetch dispatcher to extend');
  const originals = present.map((symbol) => [symbol, globals[symbol]!] as const);
  for (const [symbol, original] of originals) {
    const Agent = original.constructor as new (options?: { connect?: Record<string, unknown> }) => object;
    class TrustingAgent extends Agent {
      constructor(options: { connect?: Record<string, unknown> } = {}) {
        super({ ...options, connect: { ...options.connect, ca: [...rootCertificates, ca] } });
      }
    }
    globals[symbol] = new TrustingAgent();
  }
  return () => {
    for (const [symbol, original] of originals) globals[symbol] = original;
  };
}

function params(url: URL): Record<string, string> {
  return Object.fromEntries(url.searchParams);
}

/** The messages along an error's `cause` chain. */
function causes(error: unknown): string[] {
  const messages: string[] = [];
  for (let current = error; current instanceof Error; current = current.cause) messages.push(current.message);
  return messages;
}

function wait(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe.skipIf(skip)('OAuth rules of the gateway', () => {
  let gateway: TestGateway;
  let demo: DemoUpstream;
  let callback: CallbackServer;
  let cimd: CimdHost;
  let privateHost: PrivateDocumentHost;
  let untrust: () => void = () => {};

  const resourceMetadata = () => `${gateway.url}/.well-known/oauth-protected-resource/mcp`;

  beforeAll(async () => {
    demo = await startDemoUpstream({ host: '127.0.0.1', port: 0 });
    cimd = await startCimdHost();
    privateHost = await startPrivateDocumentHost();
    untrust = trustInFetch(privateHost.ca);
    callback = await startCallbackServer();
    gateway = await startTestGateway((config) => {
      config.upstreams = [{ name: 'demo', displayName: 'Demo tools', mcpUrl: demo.url, auth: { type: 'none' }, scopes: [] }];
      config.oauth.registrationsPerMinute = 1_000;
      config.oauth.dangerouslyResolveMetadataHosts = { [cimd.hostname]: { address: '127.0.0.1', ca: cimd.ca } };
    });
  });

  afterAll(async () => {
    await gateway?.close();
    await callback?.close();
    untrust();
    await privateHost?.close();
    await cimd?.close();
    await demo?.close();
  });

  /** A client registered for the callback server (and `extra` redirect URIs). */
  const newClient = (extra: string[] = []) => registerClient(gateway.url, [callback.url, ...extra]);

  /** Runs a whole approved consent with the driver; returns the code and what produced it. */
  async function approvedCode(options: { clientId?: string; resource?: string | null } = {}) {
    const clientId = options.clientId ?? (await newClient());
    const redirectUri = callback.url;
    const pkce = createPkce();
    const state = randomUUID();
    const user = `user-${randomUUID()}`;
    const request: AuthorizationParams = { clientId, redirectUri, pkce, state };
    if (options.resource !== undefined) request.resource = options.resource;
    const back = await new ConsentDriver(gateway.url).consent(authorizationUrl(gateway.url, request), { user });
    expect(back.origin + back.pathname).toBe(redirectUri);
    expect(back.searchParams.get('error')).toBeNull();
    const code = back.searchParams.get('code');
    if (!code) throw new Error(`no code in ${back.href}`);
    return { clientId, redirectUri, pkce, state, user, code };
  }

  /** The authorization_code grant (RFC 6749 §4.1.3) for a public client. */
  const exchange = (grant: { clientId: string; code: string; redirectUri: string }, pkce: Pkce | { verifier: string | undefined }, extra: Record<string, string> = {}) =>
    postForm(gateway.url, '/token', {
      grant_type: 'authorization_code',
      client_id: grant.clientId,
      code: grant.code,
      redirect_uri: grant.redirectUri,
      code_verifier: pkce.verifier,
      ...extra,
    });

  const refresh = (clientId: string, refreshToken: string) =>
    postForm(gateway.url, '/token', { grant_type: 'refresh_token', client_id: clientId, refresh_token: refreshToken });

  /** Tokens for a fresh approved consent. */
  async function freshTokens() {
    const grant = await approvedCode();
    const tokens = await exchange(grant, grant.pkce);
    expect(tokens.status).toBe(200);
    const { access_token: accessToken, refresh_token: refreshToken } = tokens.body;
    if (!accessToken || !refreshToken) throw new Error(`expected both tokens, got ${JSON.stringify(tokens.body)}`);
    return { ...grant, accessToken, refreshToken };
  }

  /** A flow opened by `driver`, at its first step. */
  async function openFlow(driver = new ConsentDriver(gateway.url)) {
    const clientId = await newClient();
    const state = randomUUID();
    const opened = await driver.start(authorizationUrl(gateway.url, { clientId, redirectUri: callback.url, state }));
    return { driver, clientId, state, ...opened };
  }

  describe('PKCE (RFC 7636, OAuth 2.1 §4.1.1)', () => {
    it('rejects a token request whose code_verifier does not match the code_challenge', async () => {
      const grant = await approvedCode();
      const answer = await exchange(grant, createPkce());
      expect(answer.status).toBe(400);
      expect(answer.body.error).toBe('invalid_grant');
      expect(answer.body.access_token).toBeUndefined();
    });

    it('rejects a token request without a code_verifier', async () => {
      const grant = await approvedCode();
      const answer = await exchange(grant, { verifier: undefined });
      expect(answer.status).toBe(400);
      expect(answer.body.error).toBe('invalid_grant');
      expect(answer.body.access_token).toBeUndefined();
    });

    it('answers an authorization request without code_challenge with invalid_request at the redirect URI', async () => {
      const clientId = await newClient();
      const state = randomUUID();
      const driver = new ConsentDriver(gateway.url);
      const answer = await driver.request(authorizationUrl(gateway.url, { clientId, redirectUri: callback.url, state, codeChallenge: null, codeChallengeMethod: null }));
      expect(answer.status).toBe(303);
      expect(answer.location?.origin + (answer.location?.pathname ?? '')).toBe(callback.url);
      expect(params(answer.location!)).toMatchObject({ error: 'invalid_request', state, iss: gateway.url });
      expect(answer.location!.searchParams.has('code')).toBe(false);
    });

    it('answers code_challenge_method=plain with invalid_request at the redirect URI', async () => {
      const clientId = await newClient();
      const state = randomUUID();
      const verifier = createPkce().verifier;
      const driver = new ConsentDriver(gateway.url);
      const answer = await driver.request(authorizationUrl(gateway.url, { clientId, redirectUri: callback.url, state, codeChallenge: verifier, codeChallengeMethod: 'plain' }));
      expect(answer.status).toBe(303);
      expect(answer.location?.origin + (answer.location?.pathname ?? '')).toBe(callback.url);
      expect(params(answer.location!)).toMatchObject({ error: 'invalid_request', state, iss: gateway.url });
      expect(answer.location!.searchParams.has('code')).toBe(false);
    });
  });

  describe('redirect_uri (RFC 6749 §3.1.2, §4.1.3)', () => {
    it.each([
      ['a different path', (registered: string) => registered.replace(/\/callback$/, '/elsewhere')],
      ['an extra path segment', (registered: string) => `${registered}/extra`],
      ['an extra query', (registered: string) => `${registered}?next=https://evil.example/`],
      // A loopback redirect URI of a native client may name any port (RFC 8252 §7.3), never another host.
      ['another loopback host', (registered: string) => registered.replace('//127.0.0.1:', '//localhost:')],
    ])('shows an error page instead of redirecting to a redirect_uri with %s', async (_name, alter) => {
      const clientId = await newClient();
      const redirectUri = alter(callback.url);
      expect(redirectUri).not.toBe(callback.url);
      const answer = await new ConsentDriver(gateway.url).request(authorizationUrl(gateway.url, { clientId, redirectUri }));
      expect(answer.status).toBe(400);
      expect(answer.location).toBeNull();
      expect(answer.headers.get('content-type')).toMatch(/^text\/html/);
      expect(answer.body).toContain('<code>invalid_redirect_uri</code>');
    });

    it('rejects a token request whose redirect_uri differs from the authorization request', async () => {
      const other = `${callback.url}/other`;
      const clientId = await newClient([other]);
      const grant = await approvedCode({ clientId });
      const answer = await exchange({ ...grant, redirectUri: other }, grant.pkce);
      expect(answer.status).toBe(400);
      expect(answer.body.error).toBe('invalid_grant');
      expect(answer.body.access_token).toBeUndefined();
    });
  });

  describe('resource indicators (RFC 8707)', () => {
    it('binds the token to <gateway>/mcp when the client names no resource', async () => {
      const grant = await approvedCode({ resource: null });
      const answer = await exchange(grant, grant.pkce);
      expect(answer.status).toBe(200);
      const token = await gateway.gateway.oauth.provider.AccessToken.find(answer.body.access_token!);
      expect(token?.aud).toBe(`${gateway.url}/mcp`);
      expect((await initializeMcp(gateway.url, answer.body.access_token)).status).toBe(200);
    });

    it('answers a foreign resource at the authorization endpoint with invalid_target at the redirect URI', async () => {
      const clientId = await newClient();
      const state = randomUUID();
      const answer = await new ConsentDriver(gateway.url).request(
        authorizationUrl(gateway.url, { clientId, redirectUri: callback.url, state, resource: 'https://evil.example/mcp' }),
      );
      expect(answer.status).toBe(303);
      expect(answer.location?.origin + (answer.location?.pathname ?? '')).toBe(callback.url);
      expect(params(answer.location!)).toMatchObject({ error: 'invalid_target', state, iss: gateway.url });
    });

    it('rejects a foreign resource at the token endpoint with invalid_target', async () => {
      const grant = await approvedCode();
      const answer = await exchange(grant, grant.pkce, { resource: 'https://evil.example/mcp' });
      expect(answer.status).toBe(400);
      expect(answer.body.error).toBe('invalid_target');
      expect(answer.body.access_token).toBeUndefined();
    });
  });

  describe('bearer tokens on /mcp (RFC 6750 §3, RFC 9728 §5.1)', () => {
    let upstream: FakeUpstream;

    beforeAll(async () => {
      upstream = await startFakeUpstream({ preset: 'github', autoLogin: 'mallory' });
    });

    afterAll(async () => {
      await upstream?.close();
    });

    /** A live access token the fake upstream issued for its own MCP URL. */
    async function upstreamToken(): Promise<string> {
      const pkce = createPkce();
      const redirectUri = 'http://127.0.0.1/oauth/upstream/callback';
      const url = new URL(upstream.authorizationEndpoint);
      url.search = new URLSearchParams({
        response_type: 'code',
        client_id: upstream.clientId!,
        redirect_uri: redirectUri,
        scope: upstream.scopes.join(' '),
        resource: upstream.mcpUrl,
        code_challenge: pkce.challenge,
        code_challenge_method: 'S256',
        state: randomUUID(),
      }).toString();
      const code = (await upstream.completeAuthorization(url)).searchParams.get('code');
      const response = await fetch(upstream.tokenEndpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code: code ?? '',
          redirect_uri: redirectUri,
          code_verifier: pkce.verifier,
          client_id: upstream.clientId!,
          client_secret: upstream.clientSecret!,
          resource: upstream.mcpUrl,
        }),
      });
      const body = (await response.json()) as { access_token?: string };
      if (!body.access_token) throw new Error(`the fake upstream issued no token: ${JSON.stringify(body)}`);
      return body.access_token;
    }

    it('challenges a request without a token with resource_metadata and scope, and no error code', async () => {
      const answer = await initializeMcp(gateway.url);
      expect(answer.status).toBe(401);
      expect(answer.headers.get('www-authenticate')).toBe(`Bearer resource_metadata="${resourceMetadata()}", scope="mcp:tools"`);
    });

    it('refuses a token another server issued for its own audience with invalid_token', async () => {
      const token = await upstreamToken();
      expect((await initializeMcp(new URL(upstream.mcpUrl).origin, token)).status).toBe(200);
      const answer = await initializeMcp(gateway.url, token);
      expect(answer.status).toBe(401);
      expect(JSON.parse(answer.body)).toMatchObject({ error: 'invalid_token' });
      const challenge = answer.headers.get('www-authenticate') ?? '';
      expect(challenge).toMatch(/^Bearer /);
      expect(challenge).toContain('error="invalid_token"');
      expect(challenge).toContain(`resource_metadata="${resourceMetadata()}"`);
    });

    it('refuses a garbage token with invalid_token', async () => {
      const answer = await initializeMcp(gateway.url, 'bm90LWEtdG9rZW4tZnJvbS10aGlzLWdhdGV3YXk');
      expect(answer.status).toBe(401);
      expect(JSON.parse(answer.body)).toMatchObject({ error: 'invalid_token' });
      const challenge = answer.headers.get('www-authenticate') ?? '';
      expect(challenge).toContain('error="invalid_token"');
      expect(challenge).toContain(`resource_metadata="${resourceMetadata()}"`);
    });
  });

  it('rejects a replayed authorization code and revokes the tokens issued for it', async () => {
    const grant = await approvedCode();
    const first = await exchange(grant, grant.pkce);
    expect(first.status).toBe(200);
    expect((await initializeMcp(gateway.url, first.body.access_token)).status).toBe(200);

    const second = await exchange(grant, grant.pkce);
    expect(second.status).toBe(400);
    expect(second.body.error).toBe('invalid_grant');
    expect(second.body.access_token).toBeUndefined();

    const afterReplay = await initializeMcp(gateway.url, first.body.access_token);
    expect(afterReplay.status).toBe(401);
    expect(afterReplay.headers.get('www-authenticate')).toContain('error="invalid_token"');
    const refreshed = await refresh(grant.clientId, first.body.refresh_token!);
    expect(refreshed.status).toBe(400);
    expect(refreshed.body.error).toBe('invalid_grant');
  });

  it('rejects a rotated-out refresh token and revokes the whole token family', async () => {
    const tokens = await freshTokens();
    const rotated = await refresh(tokens.clientId, tokens.refreshToken);
    expect(rotated.status).toBe(200);
    expect(rotated.body.refresh_token).not.toBe(tokens.refreshToken);
    expect((await initializeMcp(gateway.url, rotated.body.access_token)).status).toBe(200);

    const reused = await refresh(tokens.clientId, tokens.refreshToken);
    expect(reused.status).toBe(400);
    expect(reused.body.error).toBe('invalid_grant');

    const newest = await refresh(tokens.clientId, rotated.body.refresh_token!);
    expect(newest.status).toBe(400);
    expect(newest.body.error).toBe('invalid_grant');
    expect((await initializeMcp(gateway.url, rotated.body.access_token)).status).toBe(401);
    expect((await initializeMcp(gateway.url, tokens.accessToken)).status).toBe(401);
  });

  it('revokes an access token at /token/revocation (RFC 7009) so /mcp refuses it', async () => {
    const tokens = await freshTokens();
    expect((await initializeMcp(gateway.url, tokens.accessToken)).status).toBe(200);
    const answer = await postForm(gateway.url, '/token/revocation', { token: tokens.accessToken, token_type_hint: 'access_token', client_id: tokens.clientId });
    expect(answer.status).toBe(200);
    const after = await initializeMcp(gateway.url, tokens.accessToken);
    expect(after.status).toBe(401);
    expect(after.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('gives a request without scope the default scope: the approved flow ends with a code, and its token works', async () => {
    const clientId = await newClient();
    const pkce = createPkce();
    const back = await new ConsentDriver(gateway.url).consent(authorizationUrl(gateway.url, { clientId, redirectUri: callback.url, pkce, scope: null }), { user: `user-${randomUUID()}` });
    expect(back.searchParams.get('error')).toBeNull();
    const code = back.searchParams.get('code');
    expect(code).toBeTruthy();
    const token = await postForm(gateway.url, '/token', { grant_type: 'authorization_code', code: code!, code_verifier: pkce.verifier, redirect_uri: callback.url, client_id: clientId, resource: `${gateway.url}/mcp` });
    expect(token.status).toBe(200);
    expect(token.body.scope).toBe('mcp:tools');
    expect((await initializeMcp(gateway.url, token.body.access_token)).status).toBe(200);
  });

  it('sends access_denied with state and iss to the client on deny and saves no consent', async () => {
    const clientId = await newClient();
    const state = randomUUID();
    const user = `user-${randomUUID()}`;
    const back = await new ConsentDriver(gateway.url).consent(authorizationUrl(gateway.url, { clientId, redirectUri: callback.url, state }), { user, decision: 'deny' });
    expect(back.origin + back.pathname).toBe(callback.url);
    expect(params(back)).toMatchObject({ error: 'access_denied', state, iss: gateway.url });
    expect(back.searchParams.has('code')).toBe(false);
    expect(await gateway.store.getConsent(user, clientId)).toBeUndefined();
  });

  it('answers 410 with an HTML page when the interaction itself is gone', async () => {
    const flow = await openFlow();
    expect(await gateway.gateway.oauth.provider.Interaction.find(flow.uid)).toBeDefined();
    await gateway.store.oauth.destroy('Interaction', flow.uid);
    expect(await gateway.gateway.oauth.provider.Interaction.find(flow.uid)).toBeUndefined();
    const answer = await flow.driver.request(`/interaction/${flow.uid}`);
    expect(answer.status).toBe(410);
    expect(answer.headers.get('content-type')).toMatch(/^text\/html/);
    expect(answer.body).toContain('This sign-in request has expired');
    expect(answer.body).not.toContain('<cg-consent-app');
    const step = await flow.driver.post(flow.uid, 'identity', { userId: 'alice' });
    expect(step.status).toBe(410);
    expect(step.body.error).toBe('expired');
  });

  describe('consent API requests (CSRF, origin, body)', () => {
    it('refuses a step without X-CSRF-Token and leaves the flow where it was', async () => {
      const flow = await openFlow();
      const answer = await flow.driver.post(flow.uid, 'identity', { userId: 'alice' }, { csrfToken: null });
      expect(answer.status).toBe(403);
      expect(answer.body.error).toBe('access_denied');
      const state = await flow.driver.state(flow.uid);
      expect(state.body).toMatchObject({ step: 'identity', status: 'identifying', user: null });
    });

    it('refuses a step with a wrong X-CSRF-Token and leaves the flow where it was', async () => {
      const flow = await openFlow();
      const other = await openFlow(flow.driver);
      const answer = await flow.driver.post(flow.uid, 'identity', { userId: 'alice' }, { csrfToken: other.csrfToken });
      expect(answer.status).toBe(403);
      expect(answer.body.error).toBe('access_denied');
      const state = await flow.driver.state(flow.uid);
      expect(state.body).toMatchObject({ step: 'identity', status: 'identifying', user: null });
    });

    it('refuses a step sent from another origin', async () => {
      const flow = await openFlow();
      const answer = await flow.driver.post(flow.uid, 'identity', { userId: 'alice' }, { origin: 'https://evil.example' });
      expect(answer.status).toBe(403);
      expect(answer.body.error).toBe('access_denied');
      expect((await flow.driver.state(flow.uid)).body).toMatchObject({ step: 'identity', user: null });
    });

    it('refuses a body that is not application/json with 415', async () => {
      const flow = await openFlow();
      const answer = await flow.driver.post(flow.uid, 'identity', null, { contentType: 'application/x-www-form-urlencoded', rawBody: 'userId=alice' });
      expect(answer.status).toBe(415);
      expect(answer.body.error).toBe('invalid_request');
      expect((await flow.driver.state(flow.uid)).body).toMatchObject({ step: 'identity', user: null });
    });

    it('refuses a body that is not valid JSON with invalid_request', async () => {
      const flow = await openFlow();
      const answer = await flow.driver.post(flow.uid, 'identity', null, { rawBody: '{"userId": "alice"' });
      expect(answer.status).toBe(400);
      expect(answer.body.error).toBe('invalid_request');
      expect((await flow.driver.state(flow.uid)).body).toMatchObject({ step: 'identity', user: null });
    });

    it('refuses an upstream that is not offered', async () => {
      const flow = await openFlow();
      expect((await flow.driver.post(flow.uid, 'identity', { userId: `user-${randomUUID()}` })).status).toBe(200);
      const answer = await flow.driver.post(flow.uid, 'services', { upstreams: ['demo', 'not-an-upstream'] });
      expect(answer.status).toBe(400);
      expect(answer.body.error).toBe('invalid_request');
      expect((await flow.driver.state(flow.uid)).body).toMatchObject({ step: 'services', chosenUpstreams: [] });
    });

    it('refuses a decision other than approve or deny', async () => {
      const flow = await openFlow();
      expect((await flow.driver.post(flow.uid, 'identity', { userId: `user-${randomUUID()}` })).status).toBe(200);
      expect((await flow.driver.post(flow.uid, 'services', { upstreams: ['demo'] })).status).toBe(200);
      const answer = await flow.driver.post(flow.uid, 'decision', { decision: 'maybe' });
      expect(answer.status).toBe(400);
      expect(answer.body.error).toBe('invalid_request');
      expect((await flow.driver.state(flow.uid)).body).toMatchObject({ step: 'approve', status: 'awaiting_approval', redirectTo: null });
    });
  });

  describe('client ID metadata documents', () => {
    it('refuses a metadata document whose client_id differs from its URL with an error page', async () => {
      const clientId = `${cimd.origin}/clients/impostor.json`;
      cimd.serve('/clients/impostor.json', {
        client_id: `${cimd.origin}/clients/someone-else.json`,
        client_name: 'Impostor',
        redirect_uris: [callback.url],
        token_endpoint_auth_method: 'none',
      });
      const answer = await new ConsentDriver(gateway.url).request(authorizationUrl(gateway.url, { clientId, redirectUri: callback.url }));
      expect(cimd.hits.get('/clients/impostor.json')).toBeGreaterThan(0);
      expect(answer.status).toBe(400);
      expect(answer.location).toBeNull();
      expect(answer.headers.get('content-type')).toMatch(/^text\/html/);
      expect(answer.body).toContain('<code>invalid_client_metadata</code>');
    });

    it.each(['127.0.0.1', 'localhost'])('refuses a client_id URL on a private address (%s) without fetching it', async (host) => {
      const pathname = `/private-${host}.json`;
      const clientId = `https://${host}:${privateHost.port}${pathname}`;
      privateHost.serve(pathname, { client_id: clientId, client_name: 'Private', redirect_uris: [callback.url], token_endpoint_auth_method: 'none' });
      // The document is there for anyone who fetches it without the guard.
      expect((await fetch(clientId)).status).toBe(200);
      expect(privateHost.hits.get(pathname)).toBe(1);

      const errors: unknown[] = [];
      const listener = (_ctx: unknown, error: unknown) => errors.push(error);
      gateway.gateway.oauth.provider.on('authorization.error', listener);
      const answer = await new ConsentDriver(gateway.url).request(authorizationUrl(gateway.url, { clientId, redirectUri: callback.url }));
      gateway.gateway.oauth.provider.off('authorization.error', listener);
      expect(answer.status).toBe(400);
      expect(answer.location).toBeNull();
      expect(answer.headers.get('content-type')).toMatch(/^text\/html/);
      expect(answer.body).toContain('<code>invalid_client</code>');
      expect(privateHost.hits.get(pathname)).toBe(1);
      expect(causes(errors[0])).toContainEqual(expect.stringMatching(/is an IP address; a host name is required|resolves to an address that is not public/));
    });
  });

  describe('dynamic client registration (RFC 7591)', () => {
    const register = (body: string) => fetch(`${gateway.url}/reg`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

    it('rejects a web client whose redirect URI is neither https nor loopback with invalid_redirect_uri', async () => {
      const answer = await register(JSON.stringify({ client_name: 'Plain http', redirect_uris: ['http://app.example/callback'], token_endpoint_auth_method: 'none' }));
      expect(answer.status).toBe(400);
      expect(((await answer.json()) as { error: string }).error).toBe('invalid_redirect_uri');
    });

    it('rejects a registration body over 16 KiB with 413', async () => {
      const answer = await register(JSON.stringify({ client_name: 'x'.repeat(17 * 1024), redirect_uris: [callback.url], token_endpoint_auth_method: 'none' }));
      expect(answer.status).toBe(413);
      expect(((await answer.json()) as { error: string }).error).toBe('invalid_client_metadata');
    });

    it('refuses a registration sent without Content-Length (its size cannot be checked up front) with 411', async () => {
      const body = new TextEncoder().encode(JSON.stringify({ client_name: 'x'.repeat(17 * 1024), redirect_uris: [callback.url], token_endpoint_auth_method: 'none' }));
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(body);
          controller.close();
        },
      });
      const answer = await fetch(`${gateway.url}/reg`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: stream, duplex: 'half' } as RequestInit);
      expect(answer.status).toBe(411);
      expect(await answer.json()).toEqual({ error: 'invalid_request', error_description: 'registration requests must carry Content-Length' });
    });
  });

  describe.skipIf(noBrowser)('browser binding', () => {
    let browser: TestBrowser;

    beforeAll(async () => {
      browser = await launchBrowser();
    });

    afterAll(async () => {
      await browser?.close();
    });

    it('refuses the interaction in another browser and lets the first one finish', async () => {
      const clientId = await newClient();
      const state = randomUUID();
      const first = await browser.newContext();
      const second = await browser.newContext();
      try {
        const pageA = await first.newPage();
        await pageA.goto(authorizationUrl(gateway.url, { clientId, redirectUri: callback.url, state }).href);
        await pageA.getByRole('heading', { name: 'Sign in' }).waitFor();
        const interactionUrl = new URL(pageA.url());
        expect(interactionUrl.pathname).toMatch(/^\/interaction\/[A-Za-z0-9_-]+$/);

        const pageB = await second.newPage();
        const refused = await pageB.goto(interactionUrl.href);
        expect(refused?.status()).toBe(403);
        expect(await pageB.getByRole('heading').first().textContent()).toBe('This sign-in request belongs to another browser');
        expect(await pageB.locator('body').innerText()).toContain('Start again from your application');
        const stateForB = await second.request.get(`${interactionUrl.href}/state`);
        expect(stateForB.status()).toBe(403);
        expect(((await stateForB.json()) as { error: string }).error).toBe('access_denied');

        await pageA.getByLabel('User name').fill(`user-${randomUUID()}`);
        await pageA.getByRole('button', { name: 'Continue' }).click();
        await pageA.getByRole('heading', { name: 'Choose services' }).waitFor();
        await pageA.getByRole('button', { name: 'Continue' }).click();
        await pageA.getByRole('heading', { name: 'Approve access' }).waitFor();
        await pageA.getByRole('button', { name: 'Approve' }).click();
        const result = await callback.next();
        expect(result).toMatchObject({ error: null, state, iss: gateway.url });
        expect(result.code).toBeTruthy();
      } finally {
        await first.close();
        await second.close();
      }
    });
  });
});

describe.skipIf(skip)('registration rate limit', () => {
  let gateway: TestGateway;

  beforeAll(async () => {
    gateway = await startTestGateway((config) => {
      config.oauth.registrationsPerMinute = 3;
    });
  });

  afterAll(async () => {
    await gateway?.close();
  });

  it('answers 429 with Retry-After once an address exceeds registrationsPerMinute', async () => {
    for (let i = 0; i < 3; i += 1) {
      expect(await registerClient(gateway.url, ['http://127.0.0.1:9/callback'])).toBeTruthy();
    }
    const answer = await fetch(`${gateway.url}/reg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: ['http://127.0.0.1:9/callback'], token_endpoint_auth_method: 'none' }),
    });
    expect(answer.status).toBe(429);
    expect(answer.headers.get('retry-after')).toBe('60');
    expect(((await answer.json()) as { error: string }).error).toBe('temporarily_unavailable');
  });
});

describe.skipIf(skip)('flow expiry', () => {
  // Short, but long enough that the OAuth interaction (whose TTL is derived from this) is still
  // alive when the flow's own, shorter timer fires: the step test must meet an expired flow.
  const flowTtlMs = 4_000;
  let gateway: TestGateway;
  let callback: CallbackServer;

  beforeAll(async () => {
    callback = await startCallbackServer();
    gateway = await startTestGateway((config) => {
      config.flowTtlMs = flowTtlMs;
      config.upstreams = [{ name: 'demo', displayName: 'Demo tools', mcpUrl: 'http://127.0.0.1:9/mcp', auth: { type: 'none' }, scopes: [] }];
    });
  });

  afterAll(async () => {
    await gateway?.close();
    await callback?.close();
  });

  /** Opens a flow for a fresh client and signs in. */
  async function signedInFlow() {
    const clientId = await registerClient(gateway.url, [callback.url]);
    const state = randomUUID();
    const driver = new ConsentDriver(gateway.url);
    const openedAt = Date.now();
    const opened = await driver.start(authorizationUrl(gateway.url, { clientId, redirectUri: callback.url, state }));
    const signedIn = await driver.post(opened.uid, 'identity', { userId: `user-${randomUUID()}` });
    expect(signedIn.status).toBe(200);
    expect(signedIn.body.status).toBe('choosing_services');
    return { driver, clientId, state, openedAt, expiresAt: Date.parse(signedIn.body.expiresAt), ...opened };
  }

  it('gives the flow the configured TTL', async () => {
    const flow = await signedInFlow();
    expect(flow.expiresAt - flow.openedAt).toBeGreaterThanOrEqual(flowTtlMs);
  });

  it('shows a flow past its TTL as expired and sends access_denied about expiry to the client', async () => {
    const flow = await signedInFlow();
    await wait(Math.max(flow.openedAt + flowTtlMs, flow.expiresAt) - Date.now() + 500);
    const state = await flow.driver.state(flow.uid);
    expect(state.status).toBe(200);
    expect(state.body.status).toBe('expired');
    expect(state.body.redirectTo).toEqual(expect.any(String));
    const back = await flow.driver.followToClient(state.body.redirectTo!);
    expect(back.origin + back.pathname).toBe(callback.url);
    expect(params(back)).toMatchObject({ error: 'access_denied', state: flow.state, iss: gateway.url });
    expect(back.searchParams.get('error_description')).toMatch(/expired/);
  });

  it('refuses a step on an expired flow with 410 expired', async () => {
    const flow = await signedInFlow();
    // Poll until the flow itself reports expiry, so the step meets an expired flow, not a missing interaction.
    let status = '';
    for (const giveUpAt = Date.now() + flowTtlMs + 5_000; status !== 'expired' && Date.now() < giveUpAt; ) {
      await wait(50);
      const state = await flow.driver.state(flow.uid);
      expect(state.status).toBe(200);
      status = state.body.status;
    }
    expect(status).toBe('expired');
    const answer = await flow.driver.post(flow.uid, 'services', { upstreams: ['demo'] });
    expect(answer.status).toBe(410);
    expect(answer.body.error).toBe('expired');
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizationUrl, ConsentDriver, createPkce, postForm } from '../helpers/consent-driver.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { registerPublicClient } from '../helpers/issued-tokens.js';
import { temporalUnavailable } from '../helpers/temporal.js';

/**
 * The gateway's OAuth server at the MCP 2026-07-28 level: `iss` on authorization responses
 * (SEP-2468), RFC 8414 / RFC 9728 metadata URLs (SEP-2351), `application_type` in dynamic
 * registration (SEP-837), the registration ways and their switches, refresh tokens and
 * `offline_access` (SEP-2207).
 */

const upstreams = [
  { name: 'alpha', displayName: 'Alpha', mcpUrl: 'http://127.0.0.1:9/mcp', auth: { type: 'none' as const }, scopes: [] },
  { name: 'beta', displayName: 'Beta', mcpUrl: 'http://127.0.0.1:9/mcp', auth: { type: 'none' as const }, scopes: [] },
];

async function register(gatewayUrl: string, metadata: Record<string, unknown>): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${gatewayUrl}/reg`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: 'Registration test', token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], ...metadata }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function getJson(url: string): Promise<{ status: number; type: string | null; body: Record<string, unknown> }> {
  const response = await fetch(url);
  return { status: response.status, type: response.headers.get('content-type'), body: (await response.json().catch(() => ({}))) as Record<string, unknown> };
}

/** Registers a public client, runs the consent flow for `scope` and exchanges the code. */
async function authorize(gatewayUrl: string, options: { scope: string; grantTypes?: string[]; user?: string }) {
  const redirectUri = 'http://127.0.0.1:9/callback';
  const registered = await register(gatewayUrl, { redirect_uris: [redirectUri], ...(options.grantTypes ? { grant_types: options.grantTypes } : {}) });
  if (registered.status !== 201) throw new Error(`registration answered ${registered.status}: ${JSON.stringify(registered.body)}`);
  const clientId = String(registered.body.client_id);
  const pkce = createPkce();
  const back = await new ConsentDriver(gatewayUrl).consent(authorizationUrl(gatewayUrl, { clientId, redirectUri, pkce, scope: options.scope }), { user: options.user ?? 'refresh-user' });
  const code = back.searchParams.get('code');
  if (!code) throw new Error(`no code: ${back.href}`);
  const token = await postForm(gatewayUrl, '/token', { grant_type: 'authorization_code', code, code_verifier: pkce.verifier, redirect_uri: redirectUri, client_id: clientId, resource: `${gatewayUrl}/mcp` });
  expect(token.status).toBe(200);
  return { back, clientId, token: token.body };
}

describe.skipIf(Boolean(temporalUnavailable))("the gateway's OAuth server, MCP 2026-07-28", () => {
  /** Every registration way on, refresh tokens to every client registered for them. */
  let open: TestGateway;
  /** Pre-registered clients only, refresh tokens only for offline_access. */
  let closed: TestGateway;
  /** An issuer with a path, as behind a proxy that mounts the gateway at /gw. */
  let pathIssuer: TestGateway;

  beforeAll(async () => {
    // One after the other: gateways of one process share the workflow bundle they build.
    open = await startTestGateway((config) => {
      config.upstreams = upstreams;
    });
    closed = await startTestGateway((config) => {
      config.upstreams = upstreams;
      config.clients = [{ clientId: 'desk', clientName: 'Desk', redirectUris: ['http://127.0.0.1:9/callback'] }];
      config.oauth.registration = { preRegistered: true, clientMetadataDocuments: false, dynamic: false };
      config.oauth.refreshTokens = 'offline_access';
    });
    pathIssuer = await startTestGateway((config) => {
      config.upstreams = upstreams;
      config.http.publicUrl = `${config.http.publicUrl}/gw`;
    });
  });

  afterAll(async () => {
    await Promise.all([open?.close(), closed?.close(), pathIssuer?.close()]);
  });

  describe('SEP-2468: iss on every authorization response (RFC 9207)', () => {
    it('advertises authorization_response_iss_parameter_supported', async () => {
      const metadata = await getJson(`${open.url}/.well-known/oauth-authorization-server`);
      expect(metadata.body.authorization_response_iss_parameter_supported).toBe(true);
    });

    it('puts iss on a success response, and on error responses at the redirect URI', async () => {
      const { back } = await authorize(open.url, { scope: 'mcp:tools' });
      expect(back.searchParams.getAll('iss')).toEqual([open.url]);

      const clientId = String((await register(open.url, { redirect_uris: ['http://127.0.0.1:9/callback'] })).body.client_id);
      const driver = new ConsentDriver(open.url);
      // A foreign resource, and PKCE's plain method: each an error sent to the client, with iss.
      for (const [params, error] of [
        [{ resource: 'https://elsewhere.example/mcp' }, 'invalid_target'],
        [{ codeChallengeMethod: 'plain' }, 'invalid_request'],
      ] as const) {
        const back = await driver.followToClient(authorizationUrl(open.url, { clientId, redirectUri: 'http://127.0.0.1:9/callback', ...params }));
        expect(back.origin).toBe('http://127.0.0.1:9');
        expect(back.searchParams.get('error')).toBe(error);
        expect(back.searchParams.getAll('iss')).toEqual([open.url]);
      }
      const denied = await driver.consent(authorizationUrl(open.url, { clientId, redirectUri: 'http://127.0.0.1:9/callback' }), { user: 'iss-user', decision: 'deny' });
      expect(denied.searchParams.get('error')).toBe('access_denied');
      expect(denied.searchParams.getAll('iss')).toEqual([open.url]);
    });
  });

  describe('SEP-2351: metadata at the well-known URLs', () => {
    it('serves RFC 8414 metadata at /.well-known/oauth-authorization-server (and the OpenID form), issuer identical to the one the URL was built from', async () => {
      for (const suffix of ['oauth-authorization-server', 'openid-configuration']) {
        const metadata = await getJson(`${open.url}/.well-known/${suffix}`);
        expect(metadata.status).toBe(200);
        expect(metadata.type).toMatch(/application\/json/);
        expect(metadata.body.issuer).toBe(open.url);
        expect(metadata.body.code_challenge_methods_supported).toEqual(['S256']);
      }
    });

    it('serves protected resource metadata for /mcp and each /mcp/<upstream> at the URL its 401 names, each naming the issuer whose metadata resolves', async () => {
      for (const path of ['/mcp', '/mcp/alpha', '/mcp/beta']) {
        const challenge = await fetch(`${open.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{}' });
        expect(challenge.status).toBe(401);
        const metadataUrl = /resource_metadata="([^"]+)"/.exec(challenge.headers.get('www-authenticate') ?? '')?.[1];
        expect(metadataUrl).toBe(`${open.url}/.well-known/oauth-protected-resource${path}`);
        const resource = await getJson(metadataUrl!);
        expect(resource.body.resource).toBe(`${open.url}${path}`);
        expect(resource.body.authorization_servers).toEqual([open.url]);
      }
      // The root form, which a client falls back to, describes /mcp.
      expect((await getJson(`${open.url}/.well-known/oauth-protected-resource`)).body.resource).toBe(`${open.url}/mcp`);
    });

    it('with an issuer that has a path, serves both at the path-inserted URLs a client builds from it', async () => {
      const origin = new URL(pathIssuer.url).origin;
      expect(pathIssuer.url).toBe(`${origin}/gw`);
      for (const suffix of ['oauth-authorization-server', 'openid-configuration']) {
        const metadata = await getJson(`${origin}/.well-known/${suffix}/gw`);
        expect(metadata.status).toBe(200);
        expect(metadata.body.issuer).toBe(pathIssuer.url);
      }
      for (const path of ['/mcp', '/mcp/alpha']) {
        const resource = await getJson(`${origin}/.well-known/oauth-protected-resource/gw${path}`);
        expect(resource.status).toBe(200);
        expect(resource.body.resource).toBe(`${pathIssuer.url}${path}`);
        expect(resource.body.authorization_servers).toEqual([pathIssuer.url]);
      }
    });
  });

  describe('SEP-837: application_type in dynamic registration', () => {
    const refused = async (metadata: Record<string, unknown>) => {
      const answer = await register(open.url, metadata);
      expect(answer.status, JSON.stringify(answer.body)).toBe(400);
      expect(answer.body.error).toBe('invalid_redirect_uri');
    };
    const accepted = async (metadata: Record<string, unknown>, applicationType: string) => {
      const answer = await register(open.url, metadata);
      expect(answer.status, JSON.stringify(answer.body)).toBe(201);
      expect(answer.body.application_type).toBe(applicationType);
    };

    it('web: https on a real host only', async () => {
      await accepted({ application_type: 'web', redirect_uris: ['https://app.example/callback'] }, 'web');
      await refused({ application_type: 'web', redirect_uris: ['http://127.0.0.1:8080/callback'] });
      await refused({ application_type: 'web', redirect_uris: ['https://localhost/callback'] });
      await refused({ application_type: 'web', redirect_uris: ['com.example.app:/callback'] });
      await refused({ application_type: 'web', redirect_uris: ['http://app.example/callback'] });
    });

    it('native: loopback http or a private-use scheme only', async () => {
      await accepted({ application_type: 'native', redirect_uris: ['http://127.0.0.1:8080/callback', 'http://[::1]:8080/callback'] }, 'native');
      await accepted({ application_type: 'native', redirect_uris: ['com.example.app:/callback'] }, 'native');
      await refused({ application_type: 'native', redirect_uris: ['https://app.example/callback'] });
      await refused({ application_type: 'native', redirect_uris: ['http://app.example/callback'] });
      await refused({ application_type: 'native', redirect_uris: ['javascript:alert(1)'] });
    });

    it('native: a loopback redirect URI matches on any port (RFC 8252 §7.3), a web one exactly', async () => {
      const native = String((await register(open.url, { application_type: 'native', redirect_uris: ['http://127.0.0.1:8080/callback'] })).body.client_id);
      const web = String((await register(open.url, { application_type: 'web', redirect_uris: ['https://app.example/callback'] })).body.client_id);
      const driver = new ConsentDriver(open.url);
      const otherPort = await driver.start(authorizationUrl(open.url, { clientId: native, redirectUri: 'http://127.0.0.1:49152/callback' }));
      expect(otherPort.page.status).toBe(200);
      const otherHost = await driver.request(authorizationUrl(open.url, { clientId: native, redirectUri: 'http://localhost:8080/callback' }));
      expect(otherHost.status).toBe(400);
      const webOtherPort = await driver.request(authorizationUrl(open.url, { clientId: web, redirectUri: 'https://app.example:8443/callback' }));
      expect(webOtherPort.status).toBe(400);
      expect(webOtherPort.body).toContain('invalid_redirect_uri');
    });

    it('undeclared: the kind the redirect URIs show, recorded; both kinds at once are refused', async () => {
      await accepted({ redirect_uris: ['http://127.0.0.1:8080/callback'] }, 'native');
      await accepted({ redirect_uris: ['https://app.example/callback'] }, 'web');
      await refused({ redirect_uris: ['https://app.example/callback', 'http://127.0.0.1:8080/callback'] });
      const other = await register(open.url, { application_type: 'desktop', redirect_uris: ['http://127.0.0.1:8080/callback'] });
      expect(other.status).toBe(400);
      expect(other.body.error).toBe('invalid_client_metadata');
    });
  });

  describe('client registration ways, each switchable', () => {
    it('advertises each enabled way in the metadata and none that is off', async () => {
      const all = (await getJson(`${open.url}/.well-known/oauth-authorization-server`)).body;
      expect(all.registration_endpoint).toBe(`${open.url}/reg`);
      expect(all.client_id_metadata_document_supported).toBe(true);
      const preRegisteredOnly = (await getJson(`${closed.url}/.well-known/oauth-authorization-server`)).body;
      expect(preRegisteredOnly.registration_endpoint).toBeUndefined();
      expect(preRegisteredOnly.client_id_metadata_document_supported).toBeUndefined();
    });

    it('with dynamic registration off: /reg is gone, a client it registered earlier is unknown, a pre-registered one works', async () => {
      const reg = await fetch(`${closed.url}/reg`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ redirect_uris: ['http://127.0.0.1:9/callback'] }) });
      expect(reg.status).toBe(404);
      await registerPublicClient(closed.store, 'registered-before');
      const driver = new ConsentDriver(closed.url);
      const earlier = await driver.request(authorizationUrl(closed.url, { clientId: 'registered-before', redirectUri: 'http://127.0.0.1:1/cb' }));
      expect(earlier.status).toBe(400);
      expect(earlier.body).toMatch(/invalid_client/);
      const { uid } = await driver.start(authorizationUrl(closed.url, { clientId: 'desk', redirectUri: 'http://127.0.0.1:9/callback' }));
      expect(uid).toBeTruthy();
    });

    it('with pre-registration off, a configured client is unknown', async () => {
      const gateway = await startTestGateway((config) => {
        config.clients = [{ clientId: 'desk', clientName: 'Desk', redirectUris: ['http://127.0.0.1:9/callback'] }];
        config.oauth.registration = { preRegistered: false, clientMetadataDocuments: true, dynamic: true };
      });
      try {
        const answer = await new ConsentDriver(gateway.url).request(authorizationUrl(gateway.url, { clientId: 'desk', redirectUri: 'http://127.0.0.1:9/callback' }));
        expect(answer.status).toBe(400);
        expect(answer.body).toMatch(/invalid_client/);
      } finally {
        await gateway.close();
      }
    });
  });

  describe('SEP-2207: refresh tokens and offline_access', () => {
    it('lists offline_access for the authorization server, never for a protected resource or in a challenge', async () => {
      expect((await getJson(`${open.url}/.well-known/oauth-authorization-server`)).body.scopes_supported).toContain('offline_access');
      for (const path of ['/mcp', '/mcp/alpha']) {
        expect((await getJson(`${open.url}/.well-known/oauth-protected-resource${path}`)).body.scopes_supported).not.toContain('offline_access');
        const challenge = await fetch(`${open.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
        expect(challenge.headers.get('www-authenticate')).not.toContain('offline_access');
      }
    });

    it('policy "client": a refresh token to a client registered for the grant, none to one that is not', async () => {
      expect((await authorize(open.url, { scope: 'mcp:tools' })).token.refresh_token).toEqual(expect.any(String));
      expect((await authorize(open.url, { scope: 'mcp:tools', grantTypes: ['authorization_code'] })).token.refresh_token).toBeUndefined();
    });

    it('policy "offline_access": a refresh token only when the client asked for offline_access, and it refreshes', async () => {
      // The closed gateway registers nothing: its pre-registered client is used.
      const run = async (scope: string) => {
        const pkce = createPkce();
        const redirectUri = 'http://127.0.0.1:9/callback';
        const back = await new ConsentDriver(closed.url).consent(authorizationUrl(closed.url, { clientId: 'desk', redirectUri, pkce, scope }), { user: 'offline-user' });
        const code = back.searchParams.get('code');
        expect(code, back.href).toBeTruthy();
        const token = await postForm(closed.url, '/token', { grant_type: 'authorization_code', code: code!, code_verifier: pkce.verifier, redirect_uri: redirectUri, client_id: 'desk', resource: `${closed.url}/mcp` });
        expect(token.status).toBe(200);
        return token.body;
      };
      expect((await run('mcp:tools')).refresh_token).toBeUndefined();
      const offline = await run('mcp:tools offline_access');
      expect(offline.refresh_token).toEqual(expect.any(String));
      const refreshed = await postForm(closed.url, '/token', { grant_type: 'refresh_token', refresh_token: offline.refresh_token!, client_id: 'desk' });
      expect(refreshed.status).toBe(200);
      expect(refreshed.body.access_token).toEqual(expect.any(String));
    });
  });
});

import { randomBytes } from 'node:crypto';
import type { UpstreamConfig } from '../../server/config.js';
import { authorizationUrl, ConsentDriver, createPkce, postForm, registerClient } from './consent-driver.js';
import { startFakeIdp, type FakeIdp } from './fake-idp.js';
import { startFakeUpstream, type FakeUpstream } from './fake-upstream.js';
import { freePort } from './free-port.js';
import { startTestGateway, type TestGateway } from './gateway.js';
import type { TrustedIdp } from './identity-grants.js';

/**
 * Gets a gateway access token for a user who signs in at the fake IdP (`oidc` identity mode),
 * without a browser: registration, the authorization request, the sign-in at the IdP (as the IdP's
 * current answer says), the services and decision steps, and the code exchange.
 */
export async function signInThroughIdp(gatewayUrl: string, idp: FakeIdp, options: { resource?: string; upstreams: string[] }): Promise<string> {
  const redirectUri = 'http://127.0.0.1:9/callback';
  const clientId = await registerClient(gatewayUrl, [redirectUri], 'IdP sign-in helper');
  const pkce = createPkce();
  const resource = options.resource ?? `${gatewayUrl}/mcp`;
  const driver = new ConsentDriver(gatewayUrl);
  const { uid } = await driver.start(authorizationUrl(gatewayUrl, { clientId, redirectUri, pkce, resource }));
  const started = await driver.post(uid, 'identity', {});
  const toIdp = (started.body as unknown as { redirectTo?: string }).redirectTo;
  if (started.status !== 200 || !toIdp) throw new Error(`the identity step answered ${started.status}`);
  const returned = await driver.request(await idp.completeAuthorization(toIdp));
  if (returned.status !== 303) throw new Error(`the IdP callback answered ${returned.status}: ${returned.body.slice(0, 300)}`);
  const services = await driver.post(uid, 'services', { upstreams: options.upstreams });
  if (services.status !== 200) throw new Error(`the services step answered ${services.status}`);
  const decided = await driver.post(uid, 'decision', { decision: 'approve' });
  if (!decided.body.redirectTo) throw new Error(`the decision step answered ${decided.status}`);
  const code = (await driver.followToClient(decided.body.redirectTo)).searchParams.get('code');
  if (!code) throw new Error('the consent flow ended without a code');
  const token = await postForm(gatewayUrl, '/token', { grant_type: 'authorization_code', code, code_verifier: pkce.verifier, redirect_uri: redirectUri, client_id: clientId, resource });
  if (token.status !== 200 || !token.body.access_token) throw new Error(`the token endpoint answered ${token.status}`);
  return token.body.access_token;
}

/** A `tools/call` of `tool` at `/mcp/<upstream>` with a gateway token (MCP 2025-11-25, no session). */
export async function callUpstreamTool(gatewayUrl: string, upstream: string, token: string, tool: string, id = 1): Promise<{ status: number; body: { id?: unknown; result?: unknown; error?: { code: number; message: string } } }> {
  const response = await fetch(`${gatewayUrl}/mcp/${upstream}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' },
    body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: tool, arguments: tool === 'echo' ? { text: 'hello' } : {} } }),
  });
  const text = await response.text();
  const json = text.startsWith('{') ? text : (/^data: (.*)$/m.exec(text)?.[1] ?? '{}');
  return { status: response.status, body: JSON.parse(json) as never };
}

/** A fake IdP, a fake upstream (github) that trusts it, and a gateway signing users in at the IdP. */
export interface IdentityBrokerSetup {
  idp: FakeIdp;
  upstream: FakeUpstream;
  gateway: TestGateway;
  close(): Promise<void>;
}

/**
 * Starts the three parts in the order each needs the others' addresses: the IdP's port first, the
 * upstream trusting that issuer, the gateway (upstream `github` with the `auth` that `auth` makes
 * of the upstream, `oidc` identity mode), then the IdP with the gateway's callback.
 */
export async function startIdentityBroker(options: {
  auth(upstream: FakeUpstream): UpstreamConfig['auth'];
  trustedIdp?: Omit<TrustedIdp, 'issuer'>;
  idJag?: boolean;
  requireDpop?: boolean;
  autoLogin: string;
}): Promise<IdentityBrokerSetup> {
  const idpPort = await freePort();
  const idpIssuer = `http://127.0.0.1:${idpPort}`;
  const idpSecret = randomBytes(24).toString('base64url');
  const upstream = await startFakeUpstream({ preset: 'github', trustedIdp: { issuer: idpIssuer, ...options.trustedIdp }, ...(options.requireDpop ? { requireDpop: true } : {}) });
  const gateway = await startTestGateway((config) => {
    config.upstreams = [{ name: 'github', displayName: 'GitHub', mcpUrl: upstream.mcpUrl, auth: options.auth(upstream), scopes: ['repo'] }];
    config.identity = { mode: 'oidc', oidc: { issuer: idpIssuer, clientId: 'consent-gateway', clientSecret: idpSecret, scopes: ['openid'] } };
  });
  const idp = await startFakeIdp({
    port: idpPort,
    redirectUris: [`${gateway.url}/oauth/idp/callback`],
    clientSecret: idpSecret,
    autoLogin: options.autoLogin,
    ...(options.idJag ? { idJag: { clients: { [upstream.issuer]: upstream.clientId! } } } : {}),
  });
  return {
    idp,
    upstream,
    gateway,
    async close() {
      await gateway.close();
      await idp.close();
      await upstream.close();
    },
  };
}

/** `auth: { type: enterprise }` at the fake upstream `github`, as its static client (`client_secret_post`). */
export function enterpriseAuthAt(github: FakeUpstream): UpstreamConfig['auth'] {
  return {
    type: 'enterprise',
    issuer: github.issuer,
    tokenEndpoint: github.tokenEndpoint,
    resource: true,
    client: { clientId: github.clientId!, clientSecret: github.clientSecret!, authMethod: 'client_secret_post' },
  };
}

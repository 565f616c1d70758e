import { UnauthorizedError, type OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type {
  OAuthClientInformationMixed,
  OAuthClientMetadata,
  OAuthTokens,
} from '@modelcontextprotocol/sdk/shared/auth.js';
import * as oauth from 'oauth4webapi';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { startFakeUpstream, type FakeUpstream } from './fake-upstream.js';

const REDIRECT_URI = 'http://127.0.0.1/oauth/upstream/callback';
const insecure = { [oauth.allowInsecureRequests]: true } as const;

interface OAuthClientSetup {
  as: oauth.AuthorizationServer;
  client: oauth.Client;
  auth: oauth.ClientAuth;
}

async function discover(upstream: FakeUpstream): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(upstream.issuer);
  const response = await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure });
  return oauth.processDiscoveryResponse(issuer, response);
}

async function staticClient(upstream: FakeUpstream): Promise<OAuthClientSetup> {
  if (!upstream.clientId || !upstream.clientSecret) throw new Error('the upstream has no static client');
  return {
    as: await discover(upstream),
    client: { client_id: upstream.clientId },
    auth: oauth.ClientSecretPost(upstream.clientSecret),
  };
}

async function registeredClient(upstream: FakeUpstream): Promise<OAuthClientSetup> {
  const as = await discover(upstream);
  const response = await oauth.dynamicClientRegistrationRequest(
    as,
    {
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      client_name: 'test client',
    },
    insecure,
  );
  const client = await oauth.processDynamicClientRegistrationResponse(response);
  return { as, client, auth: oauth.None() };
}

function authorizationUrl(
  upstream: FakeUpstream,
  { as, client }: OAuthClientSetup,
  pkce: { challenge: string; state: string },
  extra: Record<string, string> = {},
): URL {
  if (!as.authorization_endpoint) throw new Error('no authorization endpoint in metadata');
  const url = new URL(as.authorization_endpoint);
  url.search = new URLSearchParams({
    client_id: client.client_id,
    redirect_uri: REDIRECT_URI,
    response_type: 'code',
    scope: upstream.scopes.join(' '),
    resource: upstream.mcpUrl,
    code_challenge: pkce.challenge,
    code_challenge_method: 'S256',
    state: pkce.state,
    ...extra,
  }).toString();
  return url;
}

/** RFC 6749 §4.1 with PKCE (RFC 7636) and the resource indicator (RFC 8707), without a browser. */
async function codeFlow(
  upstream: FakeUpstream,
  setup: OAuthClientSetup,
  extra: Record<string, string> = {},
): Promise<oauth.TokenEndpointResponse> {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const challenge = await oauth.calculatePKCECodeChallenge(verifier);
  const callback = await upstream.completeAuthorization(
    authorizationUrl(upstream, setup, { challenge, state }, extra),
  );
  const params = oauth.validateAuthResponse(setup.as, setup.client, callback, state);
  const response = await oauth.authorizationCodeGrantRequest(
    setup.as,
    setup.client,
    setup.auth,
    params,
    REDIRECT_URI,
    verifier,
    { additionalParameters: { resource: upstream.mcpUrl }, ...insecure },
  );
  return oauth.processAuthorizationCodeResponse(setup.as, setup.client, response);
}

async function refresh(setup: OAuthClientSetup, refreshToken: string): Promise<oauth.TokenEndpointResponse> {
  const response = await oauth.refreshTokenGrantRequest(setup.as, setup.client, setup.auth, refreshToken, insecure);
  return oauth.processRefreshTokenResponse(setup.as, setup.client, response);
}

async function refreshError(setup: OAuthClientSetup, refreshToken: string): Promise<string | undefined> {
  try {
    await refresh(setup, refreshToken);
    return undefined;
  } catch (error) {
    if (error instanceof oauth.ResponseBodyError) return error.error;
    throw error;
  }
}

async function callTool(
  upstream: FakeUpstream,
  accessToken: string,
  name: string,
  args: Record<string, unknown> = {},
): Promise<unknown> {
  const client = new McpClient({ name: 'fake-upstream-test', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(upstream.mcpUrl), {
    requestInit: { headers: { Authorization: `Bearer ${accessToken}` } },
  });
  await client.connect(transport);
  try {
    const result = await client.callTool({ name, arguments: args });
    return result.content;
  } finally {
    await client.close();
  }
}

/** A bare MCP `initialize` POST, to look at the HTTP answer itself. */
function postInitialize(upstream: FakeUpstream, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(upstream.mcpUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
    }),
  });
}

/**
 * The SDK's OAuth client provider with a user agent that is {@link FakeUpstream.completeAuthorization}:
 * the redirect back is captured as `callback` instead of being served.
 */
class HeadlessOAuthClientProvider implements OAuthClientProvider {
  callback: URL | undefined;
  #client: OAuthClientInformationMixed | undefined;
  #tokens: OAuthTokens | undefined;
  #verifier = '';

  readonly #upstream: FakeUpstream;

  constructor(upstream: FakeUpstream) {
    this.#upstream = upstream;
  }

  get redirectUrl(): string {
    return REDIRECT_URI;
  }

  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: 'sdk test client',
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  clientInformation(): OAuthClientInformationMixed | undefined {
    return this.#client;
  }

  saveClientInformation(client: OAuthClientInformationMixed): void {
    this.#client = client;
  }

  tokens(): OAuthTokens | undefined {
    return this.#tokens;
  }

  saveTokens(tokens: OAuthTokens): void {
    this.#tokens = tokens;
  }

  async redirectToAuthorization(authorizationUrl: URL): Promise<void> {
    this.callback = await this.#upstream.completeAuthorization(authorizationUrl);
  }

  saveCodeVerifier(verifier: string): void {
    this.#verifier = verifier;
  }

  codeVerifier(): string {
    return this.#verifier;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe('github-like fake upstream', () => {
  let github: FakeUpstream;

  beforeEach(async () => {
    github = await startFakeUpstream({ preset: 'github', autoLogin: 'octocat', redirectUris: [REDIRECT_URI] });
  });
  afterEach(async () => {
    await github.close();
  });

  it('publishes RFC 8414 metadata with PKCE S256, revocation and no registration endpoint', async () => {
    const as = await discover(github);

    expect(as.issuer).toBe(github.issuer);
    expect(as.authorization_endpoint).toBe(github.authorizationEndpoint);
    expect(as.token_endpoint).toBe(github.tokenEndpoint);
    expect(as.revocation_endpoint).toBe(github.revocationEndpoint);
    expect(as.registration_endpoint).toBeUndefined();
    expect(as.code_challenge_methods_supported).toEqual(['S256']);
    expect(as.response_types_supported).toEqual(['code']);
    expect(github.registrationEndpoint).toBeUndefined();
  });

  it('serves OpenID discovery with the same issuer', async () => {
    const response = await fetch(`${github.issuer}/.well-known/openid-configuration`);

    expect(response.status).toBe(200);
    expect(((await response.json()) as { issuer: string }).issuer).toBe(github.issuer);
  });

  it('issues a long-lived access token and no refresh token', async () => {
    const tokens = await codeFlow(github, await staticClient(github));

    expect(tokens.token_type).toBe('bearer');
    expect(tokens.expires_in).toBe(8 * 60 * 60);
    expect(tokens.scope).toBe('repo read:user');
    expect(tokens.refresh_token).toBeUndefined();
    expect(github.counters).toMatchObject({ codeExchanges: 1, refreshGrants: 0, failedTokenRequests: 0 });
  });

  it('serves whoami to the account the token belongs to', async () => {
    const tokens = await codeFlow(github, await staticClient(github));

    const content = await callTool(github, tokens.access_token, 'whoami');

    expect(content).toEqual([{ type: 'text', text: 'octocat' }]);
    expect(github.toolCalls).toEqual([{ accountId: 'octocat', tool: 'whoami' }]);
  });

  it('echoes its argument and records the calling account', async () => {
    const tokens = await codeFlow(github, await staticClient(github));

    const content = await callTool(github, tokens.access_token, 'echo', { text: 'hello' });

    expect(content).toEqual([{ type: 'text', text: 'hello' }]);
    expect(github.toolCalls).toEqual([{ accountId: 'octocat', tool: 'echo' }]);
  });

  it('logs in as the login_hint when one is given', async () => {
    const tokens = await codeFlow(github, await staticClient(github), { login_hint: 'hubot' });

    expect(await callTool(github, tokens.access_token, 'whoami')).toEqual([{ type: 'text', text: 'hubot' }]);
  });

  it('answers a request without a token with 401 and a Bearer challenge', async () => {
    const response = await postInitialize(github);

    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer scope="repo read:user"');
    expect(await response.json()).toEqual({ error: 'invalid_token', error_description: 'an access token is required' });
    expect(github.counters).toMatchObject({ mcpRequests: 1, unauthenticatedMcpRequests: 1, rejectedMcpRequests: 0 });
  });

  it('does not serve protected resource metadata', async () => {
    const response = await fetch(new URL('/.well-known/oauth-protected-resource/mcp', github.mcpUrl));

    expect(response.status).toBe(404);
    expect(github.resourceMetadataUrl).toBeUndefined();
  });

  it('refuses the client without its secret', async () => {
    const setup = await staticClient(github);

    await expect(codeFlow(github, { ...setup, auth: oauth.ClientSecretPost('wrong') })).rejects.toMatchObject({
      error: 'invalid_client',
    });
    expect(github.counters).toMatchObject({ codeExchanges: 0, failedTokenRequests: 1 });
  });

  it('completes the interaction page over plain HTTP when autoLogin is off', async () => {
    github.setAutoLogin(undefined);
    const setup = await staticClient(github);
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const url = authorizationUrl(github, setup, { challenge: await oauth.calculatePKCECodeChallenge(verifier), state });

    const callback = await github.completeAuthorization(url, { login: 'mona' });
    const params = oauth.validateAuthResponse(setup.as, setup.client, callback, state);
    const response = await oauth.authorizationCodeGrantRequest(
      setup.as,
      setup.client,
      setup.auth,
      params,
      REDIRECT_URI,
      verifier,
      insecure,
    );
    const tokens = await oauth.processAuthorizationCodeResponse(setup.as, setup.client, response);

    expect(await callTool(github, tokens.access_token, 'whoami')).toEqual([{ type: 'text', text: 'mona' }]);
  });

  it('returns access_denied to the client when the user cancels', async () => {
    github.setAutoLogin(undefined);
    const setup = await staticClient(github);
    const url = authorizationUrl(github, setup, { challenge: 'x'.repeat(43), state: 'cancel-state' });
    const interaction = await fetch(url, { redirect: 'manual' });
    const interactionPath = interaction.headers.get('location');
    const cookie = interaction.headers
      .getSetCookie()
      .map((setCookie) => setCookie.split(';')[0])
      .join('; ');

    const abort = await fetch(new URL(`${interactionPath}/abort`, github.issuer), {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie },
    });
    const resumed = await fetch(new URL(abort.headers.get('location') ?? '', github.issuer), {
      redirect: 'manual',
      headers: { cookie },
    });
    const callback = new URL(resumed.headers.get('location') ?? '');

    expect(callback.origin + callback.pathname).toBe(REDIRECT_URI);
    expect(callback.searchParams.get('error')).toBe('access_denied');
    expect(callback.searchParams.get('state')).toBe('cancel-state');
  });
});

describe('notion-like fake upstream', () => {
  let notion: FakeUpstream;

  beforeEach(async () => {
    notion = await startFakeUpstream({ preset: 'notion', autoLogin: 'ada' });
  });
  afterEach(async () => {
    await notion.close();
  });

  it('serves RFC 9728 metadata at the path-inserted and the root well-known URL', async () => {
    const resource = new URL(notion.mcpUrl);
    const discovered = await oauth.processResourceDiscoveryResponse(
      resource,
      await oauth.resourceDiscoveryRequest(resource, insecure),
    );
    const root = await fetch(new URL('/.well-known/oauth-protected-resource', notion.mcpUrl));

    expect(notion.resourceMetadataUrl).toBe(new URL('/.well-known/oauth-protected-resource/mcp', notion.mcpUrl).href);
    expect(discovered.resource).toBe(notion.mcpUrl);
    expect(discovered.authorization_servers).toEqual([notion.issuer]);
    expect(discovered.scopes_supported).toEqual(['mcp:tools']);
    expect(root.status).toBe(200);
    expect(await root.json()).toMatchObject({ resource: notion.mcpUrl, authorization_servers: [notion.issuer] });
  });

  it('answers a request without a token with 401 naming the resource metadata', async () => {
    const response = await postInitialize(notion);

    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe(
      `Bearer resource_metadata="${notion.resourceMetadataUrl}", scope="mcp:tools"`,
    );
  });

  it('publishes a registration endpoint and registers a public client (RFC 7591)', async () => {
    const setup = await registeredClient(notion);

    expect(setup.as.registration_endpoint).toBe(notion.registrationEndpoint);
    expect(setup.client.client_id).toEqual(expect.any(String));
    expect(setup.client['token_endpoint_auth_method']).toBe('none');
    expect(setup.client['redirect_uris']).toEqual([REDIRECT_URI]);
    expect(notion.counters.registrations).toBe(1);
  });

  it('issues a 60-second access token with a refresh token and serves whoami', async () => {
    const tokens = await codeFlow(notion, await registeredClient(notion));

    expect(tokens.expires_in).toBe(60);
    expect(tokens.refresh_token).toEqual(expect.any(String));
    expect(await callTool(notion, tokens.access_token, 'whoami')).toEqual([{ type: 'text', text: 'ada' }]);
    expect(notion.counters).toMatchObject({ codeExchanges: 1, refreshGrants: 0 });
  });

  it('lets the SDK client discover, register, authorize and call whoami from a bare 401', async () => {
    const provider = new HeadlessOAuthClientProvider(notion);
    const url = new URL(notion.mcpUrl);
    const firstTry = new McpClient({ name: 'sdk-oauth-test', version: '1.0.0' });

    await expect(
      firstTry.connect(new StreamableHTTPClientTransport(url, { authProvider: provider })),
    ).rejects.toBeInstanceOf(UnauthorizedError);
    const code = provider.callback?.searchParams.get('code');
    if (!code) throw new Error(`no code in ${provider.callback?.href}`);
    const transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
    await transport.finishAuth(code);
    const client = new McpClient({ name: 'sdk-oauth-test', version: '1.0.0' });
    await client.connect(transport);
    const result = await client.callTool({ name: 'whoami', arguments: {} });
    await client.close();

    expect(result.content).toEqual([{ type: 'text', text: 'ada' }]);
    expect(provider.tokens()?.refresh_token).toEqual(expect.any(String));
    expect(notion.counters).toMatchObject({ registrations: 1, codeExchanges: 1, refreshGrants: 0 });
  });

  it('rotates the refresh token and refuses the old one with invalid_grant', async () => {
    const setup = await registeredClient(notion);
    const first = await codeFlow(notion, setup);
    if (!first.refresh_token) throw new Error('no refresh token issued');

    const second = await refresh(setup, first.refresh_token);
    const reuse = await refreshError(setup, first.refresh_token);

    expect(second.refresh_token).toEqual(expect.any(String));
    expect(second.refresh_token).not.toBe(first.refresh_token);
    expect(second.access_token).not.toBe(first.access_token);
    expect(reuse).toBe('invalid_grant');
    expect(notion.counters).toMatchObject({ codeExchanges: 1, refreshGrants: 1, failedTokenRequests: 1 });
  });

  it('revokes the whole grant when a rotated refresh token is reused', async () => {
    const setup = await registeredClient(notion);
    const first = await codeFlow(notion, setup);
    if (!first.refresh_token) throw new Error('no refresh token issued');
    const second = await refresh(setup, first.refresh_token);
    if (!second.refresh_token) throw new Error('no rotated refresh token issued');

    await refreshError(setup, first.refresh_token);

    expect(await refreshError(setup, second.refresh_token)).toBe('invalid_grant');
    expect((await postInitialize(notion, { authorization: `Bearer ${second.access_token}` })).status).toBe(401);
  });

  it('serves whoami with a refreshed access token', async () => {
    const setup = await registeredClient(notion);
    const first = await codeFlow(notion, setup);
    if (!first.refresh_token) throw new Error('no refresh token issued');

    const second = await refresh(setup, first.refresh_token);

    expect(await callTool(notion, second.access_token, 'whoami')).toEqual([{ type: 'text', text: 'ada' }]);
  });

  it('makes the next refresh fail with invalid_grant after revokeAllTokensFor', async () => {
    const setup = await registeredClient(notion);
    const tokens = await codeFlow(notion, setup);
    if (!tokens.refresh_token) throw new Error('no refresh token issued');

    const revoked = await notion.revokeAllTokensFor('ada');

    expect(revoked).toBe(1);
    expect(await refreshError(setup, tokens.refresh_token)).toBe('invalid_grant');
    expect((await postInitialize(notion, { authorization: `Bearer ${tokens.access_token}` })).status).toBe(401);
    expect(notion.counters.revocations).toBe(0);
  });

  it('leaves the grants of other accounts alone in revokeAllTokensFor', async () => {
    const setup = await registeredClient(notion);
    const tokens = await codeFlow(notion, setup);
    if (!tokens.refresh_token) throw new Error('no refresh token issued');

    expect(await notion.revokeAllTokensFor('somebody-else')).toBe(0);
    expect((await refresh(setup, tokens.refresh_token)).access_token).toEqual(expect.any(String));
  });

  it('counts an RFC 7009 revocation and then refuses the revoked refresh token', async () => {
    const setup = await registeredClient(notion);
    const tokens = await codeFlow(notion, setup);
    if (!tokens.refresh_token) throw new Error('no refresh token issued');

    const response = await oauth.revocationRequest(setup.as, setup.client, setup.auth, tokens.refresh_token, insecure);
    await oauth.processRevocationResponse(response);

    expect(notion.counters.revocations).toBe(1);
    expect(await refreshError(setup, tokens.refresh_token)).toBe('invalid_grant');
  });

  it('refuses an authorization request for a foreign resource with invalid_target', async () => {
    const setup = await registeredClient(notion);
    const state = oauth.generateRandomState();
    const url = authorizationUrl(notion, setup, { challenge: 'x'.repeat(43), state }, {
      resource: 'http://127.0.0.1:1/elsewhere',
    });

    const callback = await notion.completeAuthorization(url);

    expect(callback.searchParams.get('error')).toBe('invalid_target');
    expect(notion.counters.codeExchanges).toBe(0);
  });

  it('refuses an authorization request without PKCE', async () => {
    const setup = await registeredClient(notion);
    const url = authorizationUrl(notion, setup, { challenge: 'unused', state: 's' });
    url.searchParams.delete('code_challenge');
    url.searchParams.delete('code_challenge_method');

    const callback = await notion.completeAuthorization(url);

    expect(callback.searchParams.get('error')).toBe('invalid_request');
  });

  it('refuses an access token once its TTL has passed', async () => {
    const shortLived = await startFakeUpstream({ preset: 'notion', autoLogin: 'ada', accessTokenTtlSeconds: 1 });
    try {
      const tokens = await codeFlow(shortLived, await registeredClient(shortLived));
      expect(tokens.expires_in).toBe(1);

      await sleep(2_100);
      const response = await postInitialize(shortLived, { authorization: `Bearer ${tokens.access_token}` });

      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
    } finally {
      await shortLived.close();
    }
  });
});

describe('tokens of one fake upstream at the other', () => {
  let github: FakeUpstream;
  let notion: FakeUpstream;

  beforeEach(async () => {
    github = await startFakeUpstream({ preset: 'github', autoLogin: 'octocat', redirectUris: [REDIRECT_URI] });
    notion = await startFakeUpstream({ preset: 'notion', autoLogin: 'ada' });
  });
  afterEach(async () => {
    await Promise.all([github.close(), notion.close()]);
  });

  it('refuses a notion token at the github MCP server with 401 invalid_token', async () => {
    const tokens = await codeFlow(notion, await registeredClient(notion));

    const response = await postInitialize(github, { authorization: `Bearer ${tokens.access_token}` });

    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe(
      'Bearer error="invalid_token", error_description="unknown, revoked or expired access token", scope="repo read:user"',
    );
    expect(github.toolCalls).toEqual([]);
  });

  it('refuses a github token at the notion MCP server with 401 invalid_token', async () => {
    const tokens = await codeFlow(github, await staticClient(github));

    const response = await postInitialize(notion, { authorization: `Bearer ${tokens.access_token}` });

    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe(
      `Bearer error="invalid_token", error_description="unknown, revoked or expired access token", resource_metadata="${notion.resourceMetadataUrl}", scope="mcp:tools"`,
    );
    expect(notion.toolCalls).toEqual([]);
  });
});

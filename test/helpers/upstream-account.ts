import { createHash } from 'node:crypto';
import { createActivities } from '../../activities/index.js';
import type { UpstreamConfig } from '../../server/config.js';
import type { TokenCipher } from '../../server/crypto/token-cipher.js';
import type { GatewayStore } from '../../server/store/store.js';
import type { FakeUpstream } from './fake-upstream.js';

/** The gateway's config entry for a Notion-like fake upstream: discovery from the MCP URL, dynamic registration. */
export function notionUpstreamConfig(notion: FakeUpstream, name = 'notion', displayName = 'Notion'): UpstreamConfig {
  return { name, displayName, mcpUrl: notion.mcpUrl, auth: { type: 'oauth', client: { kind: 'dynamic' }, resource: true }, scopes: [...notion.scopes] };
}

/** The gateway's entry for a GitHub-like fake upstream: its configured issuer and static client. */
export function githubUpstreamConfig(github: FakeUpstream, name = 'github', displayName = 'GitHub'): UpstreamConfig {
  return {
    name,
    displayName,
    mcpUrl: github.mcpUrl,
    auth: { type: 'oauth', issuer: github.issuer, client: { kind: 'static', clientId: github.clientId!, clientSecret: github.clientSecret!, authMethod: 'client_secret_post' }, resource: true },
    scopes: [...github.scopes],
  };
}

/**
 * Connects `userId` to a Notion-like fake upstream without a browser or a consent flow, through the
 * gateway's own activities (authorization with PKCE, code exchange): registers the gateway's client
 * there first, then stores the user's sealed tokens like a real connect does.
 */
export async function connectNotionAccount(options: {
  store: GatewayStore;
  cipher: TokenCipher;
  notion: FakeUpstream;
  upstream: UpstreamConfig;
  redirectUri: string;
  userId: string;
  login: string;
}): Promise<void> {
  const { store, cipher, notion, upstream, redirectUri } = options;
  if (!(await store.getUpstreamClient(upstream.name))) {
    const response = await fetch(notion.registrationEndpoint!, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_name: 'Consent Gateway',
        redirect_uris: [redirectUri],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      }),
    });
    if (response.status !== 201) throw new Error(`registration at the fake upstream answered ${response.status}`);
    const registered = (await response.json()) as { client_id: string };
    await store.saveUpstreamClient({ upstream: upstream.name, issuer: notion.issuer, clientId: registered.client_id, clientSecret: null, metadata: {}, registeredAt: new Date().toISOString() });
  }
  const activities = createActivities({ store, cipher, upstreams: [upstream], redirectUri });
  const flowId = `seed-${options.userId}-${Date.now()}`;
  const { authorizationRef } = await activities.prepareUpstreamAuthorization({ flowId, upstream: upstream.name, userId: options.userId });
  const authorizationUrl = cipher.open((await store.getExchangeResult(authorizationRef))!, authorizationRef);
  const callback = await notion.completeAuthorization(authorizationUrl, { login: options.login });
  const state = callback.searchParams.get('state')!;
  const stateHash = createHash('sha256').update(state).digest('base64url');
  const completed = await store.completeUpstreamAuthorization(
    stateHash,
    {
      code: cipher.seal(callback.searchParams.get('code')!, `upstream_authorizations:${stateHash}:code`),
      callback: cipher.seal(callback.searchParams.toString(), `upstream_authorizations:${stateHash}:callback`),
    },
    Math.floor(Date.now() / 1000),
  );
  if (!completed) throw new Error('the authorization could not be completed');
  await activities.exchangeUpstreamCode({ flowId, upstream: upstream.name, stateHash });
}

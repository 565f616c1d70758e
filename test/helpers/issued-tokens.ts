import { mcpScope, type OAuthServer } from '../../server/oauth/provider.js';
import type { OAuthModelStore } from '../../server/store/store.js';

/** The oidc-provider models a consent would touch, typed as far as these helpers use them. */
interface ProviderModels {
  Grant: new (init: { accountId: string; clientId: string }) => { addResourceScope(r: string, s: string): void; save(): Promise<string> };
  AccessToken: new (init: Record<string, unknown>) => { save(): Promise<string> };
  Client: { find(id: string): Promise<unknown> };
}

/** Stores a public client (PKCE, no secret) of the gateway's OAuth server, as dynamic registration would. */
export async function registerPublicClient(store: { oauth: OAuthModelStore }, clientId: string): Promise<void> {
  await store.oauth.upsert('Client', clientId, {
    payload: JSON.stringify({ client_id: clientId, redirect_uris: ['http://127.0.0.1:1/cb'], token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], id_token_signed_response_alg: 'ES256' }),
    expiresAt: null,
    grantId: null,
    sessionUid: null,
    userCode: null,
  });
}

/**
 * Real opaque access tokens of the gateway's OAuth server, as an approved consent leaves them:
 * one grant of `userId` to `clientId` covering every resource named, and one token per entry of
 * `resources`, bound to it. An empty `scope` grants no resource scope.
 */
export async function issueAccessTokens(
  oauth: OAuthServer,
  options: { userId: string; clientId: string; resources: readonly string[]; scope?: string; expiresIn?: number },
): Promise<string[]> {
  const provider = oauth.provider as unknown as ProviderModels;
  const scope = options.scope ?? mcpScope;
  const grant = new provider.Grant({ accountId: options.userId, clientId: options.clientId });
  if (scope) for (const resource of new Set(options.resources)) grant.addResourceScope(resource, scope);
  const grantId = await grant.save();
  const client = await provider.Client.find(options.clientId);
  const expiresIn = options.expiresIn ?? 3600;
  return Promise.all(
    options.resources.map((resource) =>
      new provider.AccessToken({ accountId: options.userId, client, grantId, scope, aud: resource, expiresIn, resourceServer: { audience: resource, scope, accessTokenFormat: 'opaque' } }).save(),
    ),
  );
}

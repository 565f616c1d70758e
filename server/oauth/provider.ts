import { createHash } from 'node:crypto';
import Provider, { errors, type ClientModel, type ProviderContext } from 'oidc-provider';
import type { GatewayConfig } from '../config.js';
import type { Logger } from '../log.js';
import type { GatewayStore } from '../store/store.js';
import { mcpResources, type McpResources } from '../mcp/resources.js';
import { compareStoredClientSecret, createOidcAdapter } from './adapter.js';
import { renderErrorPage } from './error-page.js';
import { metadataFetch } from './metadata-fetch.js';
import { checkedClientMetadata, validateClientMetadata } from './client-metadata-rules.js';
import { registrationLimit } from './registration-limit.js';
import { providerRequestGuards } from './request-guards.js';
import { createGatewayLimits } from '../limits/gateway-limits.js';
import type { ServerKeys } from './server-keys.js';
import { jwtBearerGrantType, registerEnterpriseGrant } from './enterprise-grant.js';
import { createAuditLog, stdoutLine } from '../audit/audit-log.js';

/** The scope every MCP client gets for `/mcp`. */
export const mcpScope = 'mcp:tools';

/** The scope a client adds to ask for a refresh token (SEP-2207); a concern of the client and this server, never of a resource. */
export const offlineAccessScope = 'offline_access';

/** The gateway's OAuth server and the values the rest of the app derives from it. */
export interface OAuthServer {
  provider: Provider;
  issuer: string;
  /** The aggregate protected resource (RFC 8707 / RFC 9728): `<public URL>/mcp`. */
  mcpResource: string;
  /** Every MCP protected resource: `/mcp` and each upstream's `/mcp/<name>`. */
  resources: McpResources;
  /** How a client got its id, for the approve screen. */
  registrationOf(client: ClientModel): 'dcr' | 'cimd' | 'static';
  /** `oauth.dpop.required`: the MCP endpoints refuse tokens not bound to a DPoP key. */
  dpopRequired: boolean;
}

/**
 * Creates the gateway's OAuth 2.1 authorization server for MCP clients (oidc-provider):
 * authorization code + PKCE S256 only, resource indicators binding tokens to `/mcp` (RFC 8707),
 * `iss` in responses (RFC 9207), dynamic registration (RFC 7591), client ID metadata documents,
 * rotating refresh tokens, revocation (RFC 7009). Its storage is the gateway's store.
 */
export function createOAuthServer(
  config: GatewayConfig,
  deps: { store: GatewayStore; log: Logger; keys: ServerKeys },
): OAuthServer {
  const issuer = config.http.publicUrl;
  const resources = mcpResources(issuer, config.upstreams);
  const mcpResource = resources.aggregate;
  // Pre-registered clients first, then client ID metadata documents, then dynamic registration as
  // the fallback (README, "Client registration"); each way can be switched off.
  const { registration } = config.oauth;
  const preRegistered = registration.preRegistered ? config.clients : [];
  const staticIds = new Set(preRegistered.map((client) => client.clientId));
  const secure = issuer.startsWith('https:');

  const provider = new Provider(issuer, {
    adapter: createOidcAdapter(deps.store.oauth),
    jwks: deps.keys.jwks,
    enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
    clients: preRegistered.map((client) => ({
      client_id: client.clientId,
      client_name: client.clientName,
      redirect_uris: client.redirectUris,
      grant_types: ['authorization_code', 'refresh_token', ...(config.oauth.enterpriseIdps.length > 0 ? [jwtBearerGrantType] : [])],
      response_types: ['code'],
      id_token_signed_response_alg: 'ES256',
      ...(client.clientSecret
        ? { client_secret: client.clientSecret, token_endpoint_auth_method: 'client_secret_basic' }
        : { token_endpoint_auth_method: 'none' }),
    })),
    clientDefaults: {
      id_token_signed_response_alg: 'ES256',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    },
    responseTypes: ['code'],
    pkce: { required: () => true },
    extraClientMetadata: { properties: checkedClientMetadata, validator: validateClientMetadata },
    scopes: [mcpScope, offlineAccessScope],
    claims: { openid: ['sub'] },
    findAccount: async (_ctx: unknown, sub: string) => ({ accountId: sub, claims: async () => ({ sub }) }),
    cookies: {
      keys: deps.keys.cookieKeys,
      names: { session: 'cg_session', interaction: 'cg_interaction', resume: 'cg_resume' },
      long: { signed: true, httpOnly: true, sameSite: 'lax', secure },
      short: { signed: true, httpOnly: true, sameSite: 'lax', secure },
    },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: registration.dynamic },
      revocation: { enabled: true },
      // A client that proves a key at the token endpoint gets a token bound to it (RFC 9449). Its
      // nonces (§8) are keyed from the first cookie key, so every process of a fleet issues and
      // accepts the same ones.
      dPoP: {
        enabled: true,
        nonceSecret: createHash('sha256').update(`dpop-nonce\0${deps.keys.cookieKeys[0] ?? ''}`).digest(),
        requireNonce: () => config.oauth.dpop.requireNonce,
      },
      introspection: { enabled: false },
      userinfo: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      clientIdMetadataDocument: { enabled: registration.clientMetadataDocuments, ack: 'draft-02' },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => mcpResource,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, resource: string) => {
          if (!resources.parse(resource)) throw new errors.InvalidTarget(`the resources here are ${mcpResource} and ${mcpResource}/<upstream> for a configured upstream`);
          return {
            // Besides the MCP scope, the upstream and tool scopes a step-up asks for (SEP-2350).
            scope: [mcpScope, ...resources.upstreamScopesOf(resource), ...resources.toolScopesOf(resource)].join(' '),
            audience: resource,
            accessTokenTTL: config.oauth.accessTokenTtlSeconds,
            accessTokenFormat: 'opaque',
          };
        },
      },
    },
    // Every authorization runs the consent flow (and its workflow), even when the browser already
    // holds a session and a grant: the flow decides whether to skip the approve step, and records it.
    loadExistingGrant: async (ctx: ProviderContext) => {
      const result = ctx.oidc?.result as { consent?: { grantId?: string } } | undefined;
      const grantId = result?.consent?.grantId;
      return grantId ? provider.Grant.find(grantId) : undefined;
    },
    // SEP-2207: only to a client registered for the refresh_token grant; under the `offline_access`
    // policy only when it also asked for that scope.
    issueRefreshToken: async (_ctx: unknown, client: ClientModel, code: { scopes: Set<string> }) =>
      client.grantTypeAllowed('refresh_token') && (config.oauth.refreshTokens === 'client' || code.scopes.has(offlineAccessScope)),
    rotateRefreshToken: true,
    expiresWithSession: () => false,
    ttl: {
      AccessToken: config.oauth.accessTokenTtlSeconds,
      AuthorizationCode: 60,
      RefreshToken: config.oauth.refreshTokenTtlSeconds,
      Grant: config.oauth.refreshTokenTtlSeconds + 86_400,
      // Outlives the consent flow, so an expired flow can still send its error to the client.
      Interaction: Math.ceil(config.flowTtlMs / 1000) + 600,
      Session: 14 * 86_400,
    },
    renderError: async (ctx: ProviderContext, out: { error: string; error_description?: string }) => {
      ctx.type = 'html';
      ctx.body = renderErrorPage(out.error, out.error_description ?? '');
    },
    // Client ID metadata documents and any other URL a client names: public addresses only.
    fetch: metadataFetch(config.oauth.dangerouslyResolveMetadataHosts),
  });
  provider.proxy = secure;
  // Registered clients' secrets are stored as hashes (adapter.ts).
  provider.Client.prototype.compareClientSecret = function compareClientSecret(presented) {
    return compareStoredClientSecret(this.clientSecret, presented);
  };

  provider.use(providerRequestGuards(config.http.allowedHosts));
  provider.use(registrationLimit(createGatewayLimits(config, deps.store).registration, config.http.trustedProxyHops));

  if (config.oauth.enterpriseIdps.length > 0) {
    registerEnterpriseGrant({
      provider,
      issuer,
      idps: config.oauth.enterpriseIdps,
      resources,
      upstreams: config.upstreams.map((upstream) => upstream.name),
      mcpScope,
      accessTokenTtlSeconds: config.oauth.accessTokenTtlSeconds,
      store: deps.store,
      audit: createAuditLog({ store: deps.store, log: deps.log, stdout: config.operations.auditStdout ? stdoutLine : undefined }),
    });
  }

  // With dynamic registration off, clients it registered earlier are unknown too.
  if (!registration.dynamic) {
    const find = provider.Client.find.bind(provider.Client);
    provider.Client.find = async (id: string) => {
      const client = await find(id);
      return client && (staticIds.has(client.clientId) || client.clientIdMetadataDocument) ? client : undefined;
    };
  }

  provider.on('server_error', (_ctx: unknown, error: Error) => deps.log.error('oauth server error', { error: error.message }));

  return {
    provider,
    issuer,
    mcpResource,
    resources,
    dpopRequired: config.oauth.dpop.required,
    registrationOf: (client) => (staticIds.has(client.clientId) ? 'static' : client.clientIdMetadataDocument ? 'cimd' : 'dcr'),
  };
}

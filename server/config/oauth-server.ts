import type { ConfigReader } from './upstream-auth/kind.js';

/** How MCP clients get a client id at the gateway's OAuth server, each way switchable. */
export interface ClientRegistrationConfig {
  /** Clients listed under `clients:` in the config. */
  preRegistered: boolean;
  /** Client ID Metadata Documents: an https URL as `client_id`, its document fetched. */
  clientMetadataDocuments: boolean;
  /** Dynamic client registration (RFC 7591) at `/reg`, the fallback. */
  dynamic: boolean;
}

/**
 * When the gateway's OAuth server issues a refresh token (SEP-2207), always only to a client
 * registered for the `refresh_token` grant: `client` to every such client, `offline_access` only
 * when the authorization request also asked for the `offline_access` scope.
 */
export type RefreshTokenPolicy = 'client' | 'offline_access';

/** The gateway's OAuth server settings under `oauth:` beyond token lifetimes and keys. */
export interface OAuthServerOptions {
  registration: ClientRegistrationConfig;
  refreshTokens: RefreshTokenPolicy;
  /**
   * DPoP (RFC 9449): a client that sends a proof to the token endpoint gets a DPoP-bound token,
   * which `/mcp` accepts only with a proof of the same key. `required`: bearer tokens are refused.
   */
  dpop: { required: boolean };
}

const flag = (value: unknown, key: string, read: ConfigReader): boolean | undefined => {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw read.error(`${key} must be true or false`);
  return value;
};

/**
 * Reads `oauth.registration.{preRegistered, clientMetadataDocuments, dynamic}` (each on unless
 * false; the older `oauth.dynamicRegistration` and `oauth.clientMetadataDocuments` still count
 * where the new key is absent), `oauth.refreshTokens` and `oauth.dpop.required`.
 */
export function parseOAuthServerOptions(oauth: Record<string, unknown>, read: ConfigReader): OAuthServerOptions {
  const registration = read.record(oauth.registration, 'oauth.registration');
  return {
    registration: {
      preRegistered: flag(registration.preRegistered, 'oauth.registration.preRegistered', read) ?? true,
      clientMetadataDocuments:
        flag(registration.clientMetadataDocuments, 'oauth.registration.clientMetadataDocuments', read) ?? flag(oauth.clientMetadataDocuments, 'oauth.clientMetadataDocuments', read) ?? true,
      dynamic: flag(registration.dynamic, 'oauth.registration.dynamic', read) ?? flag(oauth.dynamicRegistration, 'oauth.dynamicRegistration', read) ?? true,
    },
    dpop: { required: flag(read.record(oauth.dpop, 'oauth.dpop').required, 'oauth.dpop.required', read) ?? false },
    refreshTokens: read.oneOf(read.string(oauth.refreshTokens, 'oauth.refreshTokens'), ['client', 'offline_access'] as const, 'oauth.refreshTokens') ?? 'client',
  };
}

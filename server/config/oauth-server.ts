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

/** An enterprise IdP whose ID-JAGs the token endpoint accepts (Enterprise-Managed Authorization). */
export interface EnterpriseIdpConfig {
  /** The IdP's issuer, exactly as its ID-JAGs' `iss`. */
  issuer: string;
  /** Where its signing keys are (a JWKS); https unless on loopback. */
  jwksUrl: string;
}

/** The gateway's OAuth server settings under `oauth:` beyond token lifetimes and keys. */
export interface OAuthServerOptions {
  registration: ClientRegistrationConfig;
  refreshTokens: RefreshTokenPolicy;
  /**
   * DPoP (RFC 9449): a client that sends a proof to the token endpoint gets a DPoP-bound token,
   * which `/mcp` accepts only with a proof of the same key. `required`: bearer tokens are refused.
   * `requireNonce`: the token endpoint takes only proofs carrying a nonce it issued (RFC 9449 §8).
   */
  dpop: { required: boolean; requireNonce: boolean };
  /** `oauth.enterprise.idps`: the IdPs trusted for the JWT bearer grant with an ID-JAG; none by default. */
  enterpriseIdps: EnterpriseIdpConfig[];
}

const flag = (value: unknown, key: string, read: ConfigReader): boolean | undefined => {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw read.error(`${key} must be true or false`);
  return value;
};

/**
 * Reads `oauth.registration.{preRegistered, clientMetadataDocuments, dynamic}` (each on unless
 * false; the older `oauth.dynamicRegistration` and `oauth.clientMetadataDocuments` still count
 * where the new key is absent), `oauth.refreshTokens`, `oauth.dpop.{required, requireNonce}` and `oauth.enterprise.idps`.
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
    enterpriseIdps: parseEnterpriseIdps(read.record(oauth.enterprise, 'oauth.enterprise').idps, read),
    dpop: {
      required: flag(read.record(oauth.dpop, 'oauth.dpop').required, 'oauth.dpop.required', read) ?? false,
      requireNonce: flag(read.record(oauth.dpop, 'oauth.dpop').requireNonce, 'oauth.dpop.requireNonce', read) ?? false,
    },
    refreshTokens: read.oneOf(read.string(oauth.refreshTokens, 'oauth.refreshTokens'), ['client', 'offline_access'] as const, 'oauth.refreshTokens') ?? 'client',
  };
}

function parseEnterpriseIdps(value: unknown, read: ConfigReader): EnterpriseIdpConfig[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw read.error('oauth.enterprise.idps must be a list of { issuer, jwksUrl }');
  return value.map((item, i) => {
    const key = `oauth.enterprise.idps[${i}]`;
    const entry = read.record(item, key);
    const issuer = read.url(read.string(entry.issuer, `${key}.issuer`), `${key}.issuer`);
    const jwksUrl = read.url(read.string(entry.jwksUrl, `${key}.jwksUrl`), `${key}.jwksUrl`);
    const jwks = new URL(jwksUrl);
    if (jwks.protocol !== 'https:' && !['127.0.0.1', 'localhost', '[::1]'].includes(jwks.hostname)) throw read.error(`${key}.jwksUrl must use https unless it is a loopback address`);
    return { issuer: read.string(entry.issuer, `${key}.issuer`) ?? issuer, jwksUrl };
  });
}

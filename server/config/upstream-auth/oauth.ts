import type { UpstreamAuthKind } from './kind.js';

/** How the gateway obtains a client id at an upstream's authorization server. */
export type UpstreamClientConfig =
  | { kind: 'static'; clientId: string; clientSecret?: string; authMethod: 'client_secret_basic' | 'client_secret_post' | 'none' }
  | { kind: 'dynamic' }
  /** The gateway's own client ID metadata document (an https URL) is its client id there. */
  | { kind: 'metadata-document' };

/** An upstream that needs each user's OAuth authorization (authorization code with PKCE). */
export interface UpstreamOAuthConfig {
  type: 'oauth';
  /**
   * The authorization server's issuer, for RFC 8414 / OIDC discovery. Absent: found from the MCP
   * URL's protected resource metadata (RFC 9728).
   */
  issuer?: string;
  /** Explicit endpoints, instead of discovery. */
  endpoints?: { authorization: string; token: string; revocation?: string };
  client: UpstreamClientConfig;
  /** Send `resource=<mcpUrl>` (RFC 8707); on by default, as MCP servers expect. */
  resource: boolean;
  /**
   * DPoP (RFC 9449): `auto` (the default) binds each user's grant to a key of its own when the
   * authorization server advertises an algorithm the gateway signs with; `off` never does.
   */
  dpop?: 'auto' | 'off';
}

/** `auth: { type: oauth, issuer?, endpoints?, clientId?, clientSecret?, authMethod?, clientMetadataDocument?, resource?, dpop? }`. */
export const oauthAuth: UpstreamAuthKind<UpstreamOAuthConfig> = {
  type: 'oauth',
  perUserConnection: true,
  parse(entry, key, read) {
    const endpoints = entry.endpoints === undefined ? undefined : read.record(entry.endpoints, `${key}.endpoints`);
    const clientId = read.string(entry.clientId, `${key}.clientId`);
    const clientSecret = read.string(entry.clientSecret, `${key}.clientSecret`);
    const authMethod = read.oneOf(read.string(entry.authMethod, `${key}.authMethod`), ['client_secret_basic', 'client_secret_post', 'none'] as const, `${key}.authMethod`);
    const client: UpstreamClientConfig = clientId
      ? { kind: 'static', clientId, ...(clientSecret ? { clientSecret } : {}), authMethod: authMethod ?? (clientSecret ? 'client_secret_basic' : 'none') }
      : entry.clientMetadataDocument === true
        ? { kind: 'metadata-document' }
        : { kind: 'dynamic' };
    const issuer = read.string(entry.issuer, `${key}.issuer`);
    const revocation = endpoints ? read.string(endpoints.revocation, `${key}.endpoints.revocation`) : undefined;
    return {
      type: 'oauth',
      ...(issuer ? { issuer: read.url(issuer, `${key}.issuer`) } : {}),
      ...(endpoints
        ? {
            endpoints: {
              authorization: read.url(read.string(endpoints.authorization, `${key}.endpoints.authorization`), `${key}.endpoints.authorization`),
              token: read.url(read.string(endpoints.token, `${key}.endpoints.token`), `${key}.endpoints.token`),
              ...(revocation ? { revocation: read.url(revocation, `${key}.endpoints.revocation`) } : {}),
            },
          }
        : {}),
      client,
      resource: entry.resource !== false,
      dpop: read.oneOf(read.string(entry.dpop, `${key}.dpop`), ['auto', 'off'] as const, `${key}.dpop`) ?? 'auto',
    };
  },
};

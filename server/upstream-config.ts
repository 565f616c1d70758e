/** How the gateway obtains a client id at an upstream's authorization server. */
export type UpstreamClientConfig =
  | { kind: 'static'; clientId: string; clientSecret?: string; authMethod: 'client_secret_basic' | 'client_secret_post' | 'none' }
  | { kind: 'dynamic' }
  /** The gateway's own client ID metadata document (an https URL) is its client id there. */
  | { kind: 'metadata-document' };

/** An upstream that needs each user's OAuth authorization. */
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
}


/** The gateway's redirect URI at every upstream's authorization server. */
export function upstreamRedirectUri(config: { http: { publicUrl: string } }): string {
  return `${config.http.publicUrl}/oauth/upstream/callback`;
}

/** Where the gateway serves its client ID metadata document (draft-ietf-oauth-client-id-metadata-document). */
export function clientMetadataDocumentUrl(config: { http: { publicUrl: string } }): string {
  return `${config.http.publicUrl}/oauth/client-metadata.json`;
}

/** The gateway's client ID metadata document: what upstreams learn about it from its client id URL. */
export function clientMetadataDocument(config: { http: { publicUrl: string } }): Record<string, unknown> {
  return {
    client_id: clientMetadataDocumentUrl(config),
    client_name: 'Consent Gateway',
    client_uri: config.http.publicUrl,
    redirect_uris: [upstreamRedirectUri(config)],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  };
}

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

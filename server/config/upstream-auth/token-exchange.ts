import { parseClientCredentials, requiredUrl, type UpstreamClientCredentials } from './client-credentials.js';
import type { UpstreamAuthKind } from './kind.js';

/**
 * An upstream whose authorization server trusts the gateway's identity provider directly: the
 * gateway exchanges the signed-in user's IdP token there for an upstream access token (OAuth 2.0
 * Token Exchange, RFC 8693). Needs the `oidc` identity mode; no browser step.
 */
export interface UpstreamTokenExchangeConfig {
  type: 'token-exchange';
  /** The authorization server's token endpoint. */
  tokenEndpoint: string;
  /** The authorization server's issuer, as written: sent as the `audience` when no `audience` is set. */
  issuer?: string;
  /** RFC 8693 `audience`, when the authorization server wants one. */
  audience?: string;
  /** Send `resource=<mcpUrl>` (RFC 8707); on by default. */
  resource: boolean;
  /** Which of the user's IdP tokens is the `subject_token`: the ID token (default) or the IdP access token. */
  subjectToken: 'id_token' | 'access_token';
  client: UpstreamClientCredentials;
}

/** `auth: { type: token-exchange, tokenEndpoint, clientId, clientSecret?, authMethod?, issuer?, audience?, resource?, subjectToken? }`. */
export const tokenExchangeAuth: UpstreamAuthKind<UpstreamTokenExchangeConfig> = {
  type: 'token-exchange',
  perUserConnection: false,
  parse(entry, key, read) {
    const issuer = read.string(entry.issuer, `${key}.issuer`);
    const audience = read.string(entry.audience, `${key}.audience`);
    const subjectToken = read.oneOf(read.string(entry.subjectToken, `${key}.subjectToken`), ['id_token', 'access_token'] as const, `${key}.subjectToken`);
    return {
      type: 'token-exchange',
      tokenEndpoint: requiredUrl(entry, 'tokenEndpoint', key, read),
      ...(issuer && read.url(issuer, `${key}.issuer`) ? { issuer } : {}),
      ...(audience ? { audience } : {}),
      resource: entry.resource !== false,
      subjectToken: subjectToken ?? 'id_token',
      client: parseClientCredentials(entry, key, read),
    };
  },
};

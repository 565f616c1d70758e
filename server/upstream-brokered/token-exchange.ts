import type { UpstreamTokenExchangeConfig } from '../config/upstream-auth/index.js';
import type { IdpTokenSet } from '../identity/idp-tokens.js';
import { requestToken, BrokeredTokenError, type BrokeredToken } from './token-request.js';
import type { BrokeredUpstream } from './types.js';

const tokenExchangeGrant = 'urn:ietf:params:oauth:grant-type:token-exchange';

/**
 * `auth: { type: token-exchange }`: the user's IdP token is the `subject_token` of an OAuth 2.0
 * Token Exchange (RFC 8693 §2.1) at the upstream's authorization server, which trusts the IdP
 * directly and answers with an access token for the upstream.
 */
export async function exchangeIdpToken(upstream: BrokeredUpstream<UpstreamTokenExchangeConfig>, idp: IdpTokenSet, dpop?: Parameters<typeof requestToken>[0]['dpop']): Promise<BrokeredToken> {
  const auth = upstream.auth;
  const subject = auth.subjectToken === 'access_token' ? idp.accessToken : idp.idToken;
  if (!subject) throw new BrokeredTokenError(`The identity provider issued no ${auth.subjectToken} at your sign-in; ${upstream.displayName} cannot be reached with it.`);
  const parameters = new URLSearchParams({
    subject_token: subject,
    subject_token_type: `urn:ietf:params:oauth:token-type:${auth.subjectToken}`,
    requested_token_type: 'urn:ietf:params:oauth:token-type:access_token',
  });
  const audience = auth.audience ?? auth.issuer;
  if (audience) parameters.set('audience', audience);
  if (auth.resource) parameters.set('resource', upstream.mcpUrl);
  if (upstream.scopes.length > 0) parameters.set('scope', upstream.scopes.join(' '));
  return requestToken({
    displayName: upstream.displayName,
    issuer: auth.issuer ?? new URL(auth.tokenEndpoint).origin,
    tokenEndpoint: auth.tokenEndpoint,
    client: auth.client,
    grantType: tokenExchangeGrant,
    parameters,
    dpop,
  });
}

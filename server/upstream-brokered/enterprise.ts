import type { UpstreamEnterpriseConfig } from '../config/upstream-auth/index.js';
import type { IdpTokenSet } from '../identity/idp-tokens.js';
import { IdentityLoginError, TOKEN_REQUEST_FAILED, type OidcLogin } from '../identity/oidc-login.js';
import { BrokeredTokenError, requestToken, type BrokeredToken } from './token-request.js';
import type { BrokeredUpstream } from './types.js';

const idJagType = 'urn:ietf:params:oauth:token-type:id-jag';
const jwtBearerGrant = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/**
 * `auth: { type: enterprise }` (Enterprise-Managed Authorization): the IdP is asked for an
 * Identity Assertion JWT Authorization Grant for the upstream (RFC 8693 token exchange of the
 * user's ID token, `requested_token_type` ID-JAG, `audience` the upstream's issuer, `resource` its
 * MCP URL), and the ID-JAG is presented at the upstream's token endpoint (RFC 7523 JWT bearer).
 */
export async function enterpriseToken(upstream: BrokeredUpstream<UpstreamEnterpriseConfig>, idp: IdpTokenSet, at: OidcLogin, dpop?: Parameters<typeof requestToken>[0]['dpop']): Promise<BrokeredToken> {
  const auth = upstream.auth;
  const scope = upstream.scopes.join(' ');
  const ask = new URLSearchParams({
    requested_token_type: idJagType,
    audience: auth.issuer,
    subject_token: idp.idToken,
    subject_token_type: 'urn:ietf:params:oauth:token-type:id_token',
  });
  if (auth.resource) ask.set('resource', upstream.mcpUrl);
  if (scope) ask.set('scope', scope);
  let grant: string;
  try {
    const issued = await at.exchange(ask);
    if (issued.issuedTokenType !== idJagType) throw new BrokeredTokenError(`The identity provider answered with a ${issued.issuedTokenType ?? 'untyped'} token, not an ID-JAG, for ${upstream.displayName}.`);
    grant = issued.token;
  } catch (error) {
    if (!(error instanceof IdentityLoginError)) throw error;
    if (error.code === TOKEN_REQUEST_FAILED && error.idpError === 'invalid_grant') {
      throw new BrokeredTokenError(`The identity provider no longer accepts your sign-in for ${upstream.displayName}: sign in again (authorize this application once more).`, true, { cause: error });
    }
    if (error.code === TOKEN_REQUEST_FAILED) {
      throw new BrokeredTokenError(`Your identity provider does not let you use ${upstream.displayName} (${error.idpError ?? 'refused'}).`, false, { cause: error });
    }
    throw new BrokeredTokenError(`The identity provider could not be asked for access to ${upstream.displayName}.`, false, { cause: error });
  }
  const parameters = new URLSearchParams({ assertion: grant });
  if (scope) parameters.set('scope', scope);
  return requestToken({
    displayName: upstream.displayName,
    issuer: auth.issuer,
    tokenEndpoint: auth.tokenEndpoint,
    client: auth.client,
    grantType: jwtBearerGrant,
    parameters,
    dpop,
  });
}

import { authorizationUrl, ConsentDriver, createPkce, postForm, registerClient } from './consent-driver.js';

/** Tokens a registered client got through the whole consent flow. */
export interface GatewayTokens {
  clientId: string;
  accessToken: string;
  refreshToken: string | undefined;
}

/**
 * Gets a gateway access token the way an MCP client does, without a browser: dynamic
 * registration, an authorization request for `resource` (PKCE S256), the consent flow driven
 * through its JSON API as `user` (choosing `upstreams`, default every offered one), and the code
 * exchange. The redirect URI is never served: the driver stops where the gateway sends the browser.
 */
export async function obtainGatewayToken(
  gatewayUrl: string,
  options: { user: string; resource?: string; upstreams?: string[]; clientId?: string; redirectUri?: string },
): Promise<GatewayTokens> {
  const redirectUri = options.redirectUri ?? 'http://127.0.0.1:9/callback';
  const clientId = options.clientId ?? (await registerClient(gatewayUrl, [redirectUri], `Token helper for ${options.user}`));
  const pkce = createPkce();
  const resource = options.resource ?? `${gatewayUrl}/mcp`;
  const driver = new ConsentDriver(gatewayUrl);
  const back = await driver.consent(authorizationUrl(gatewayUrl, { clientId, redirectUri, pkce, resource }), {
    user: options.user,
    ...(options.upstreams ? { upstreams: options.upstreams } : {}),
  });
  const code = back.searchParams.get('code');
  if (!code) throw new Error(`the consent flow ended without a code: ${back.href}`);
  const token = await postForm(gatewayUrl, '/token', { grant_type: 'authorization_code', code, code_verifier: pkce.verifier, redirect_uri: redirectUri, client_id: clientId, resource });
  if (token.status !== 200 || !token.body.access_token) throw new Error(`the token endpoint answered ${token.status}: ${JSON.stringify(token.body)}`);
  return { clientId, accessToken: token.body.access_token, refreshToken: token.body.refresh_token };
}

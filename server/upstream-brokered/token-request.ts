import * as oauth from 'oauth4webapi';
import type { UpstreamClientCredentials } from '../config/upstream-auth/index.js';

/** An access token the gateway obtained for one user at one upstream, without a browser step. */
export interface BrokeredToken {
  accessToken: string;
  /** `bearer` or `dpop` (lower case, as oauth4webapi reports it). */
  tokenType: string;
  /** Epoch seconds, or null when the authorization server gave no lifetime. */
  expiresAt: number | null;
}

/** Why a token could not be had; the message is fit for the user and the log (no token in it). */
export class BrokeredTokenError extends Error {
  override name = 'BrokeredTokenError';
  constructor(
    message: string,
    /** The user must sign in at the IdP again (the kept IdP token is gone, expired or refused). */
    readonly signInAgain = false,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** RFC 6749 §5.2 error codes are %x20-21 / %x23-5B / %x5D-7E; anything else is not shown. */
export function safeErrorCode(value: string | undefined): string {
  return value && /^[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}$/.test(value) ? value : 'unknown_error';
}

/** The client authentication of the gateway's client at an upstream's authorization server. */
export function clientAuthOf(client: UpstreamClientCredentials): oauth.ClientAuth {
  if (client.authMethod === 'client_secret_post' && client.clientSecret) return oauth.ClientSecretPost(client.clientSecret);
  if (client.authMethod === 'client_secret_basic' && client.clientSecret) return oauth.ClientSecretBasic(client.clientSecret);
  return oauth.None();
}

/** What one token request at an upstream's authorization server needs. */
export interface TokenRequest {
  /** For messages: the upstream's display name. */
  displayName: string;
  issuer: string;
  tokenEndpoint: string;
  client: UpstreamClientCredentials;
  grantType: string;
  parameters: URLSearchParams;
  /** A DPoP handle (RFC 9449) binding the token to the gateway's key for this grant. */
  dpop?: oauth.DPoPHandle | undefined;
  timeoutMs?: number;
}

/**
 * Sends one grant to an upstream authorization server's token endpoint and reads the access token
 * out of its answer. A refusal (RFC 6749 §5.2) becomes a {@link BrokeredTokenError} naming the
 * server's `error` code only; a `use_dpop_nonce` answer is retried once with the server's nonce.
 */
export async function requestToken(request: TokenRequest): Promise<BrokeredToken> {
  const as: oauth.AuthorizationServer = { issuer: request.issuer, token_endpoint: request.tokenEndpoint };
  const client: oauth.Client = { client_id: request.client.clientId };
  const options = {
    signal: () => AbortSignal.timeout(request.timeoutMs ?? 10_000),
    // Plain http only for a loopback token endpoint (a development or test server).
    [oauth.allowInsecureRequests]: isLoopbackHttp(request.tokenEndpoint),
    ...(request.dpop ? { DPoP: request.dpop } : {}),
  };
  const send = () => oauth.genericTokenEndpointRequest(as, client, clientAuthOf(request.client), request.grantType, request.parameters, options);
  let answer: oauth.TokenEndpointResponse;
  try {
    let response = await send();
    try {
      answer = await oauth.processGenericTokenEndpointResponse(as, client, response);
    } catch (error) {
      if (!request.dpop || !oauth.isDPoPNonceError(error)) throw error;
      response = await send();
      answer = await oauth.processGenericTokenEndpointResponse(as, client, response);
    }
  } catch (error) {
    if (error instanceof oauth.ResponseBodyError) {
      throw new BrokeredTokenError(`${request.displayName} refused to issue a token (${safeErrorCode(error.error)}).`, false, { cause: error });
    }
    throw new BrokeredTokenError(`${request.displayName}'s authorization server could not be used: ${(error as Error).message}.`, false, { cause: error });
  }
  return {
    accessToken: answer.access_token,
    tokenType: answer.token_type,
    expiresAt: typeof answer.expires_in === 'number' ? Math.floor(Date.now() / 1000) + answer.expires_in : null,
  };
}

/** Plain http is allowed only for a loopback URL (a development or test server). */
export function isLoopbackHttp(url: string): boolean {
  const { protocol, hostname } = new URL(url);
  return protocol === 'http:' && (hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname));
}

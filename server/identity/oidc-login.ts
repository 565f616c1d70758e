import * as oauth from 'oauth4webapi';
import type { IdpTokens } from './idp-tokens.js';
import type { PendingLogin, PendingLogins } from './pending-logins.js';
import { validUserId } from './user-id.js';

/** Path of the gateway's redirect URI at the IdP: `<publicUrl>/oauth/idp/callback`. */
export const idpCallbackPath = '/oauth/idp/callback';

/** {@link IdentityLoginError.code}: the callback's `state` belongs to no sign-in in progress (RFC 6749 §10.12). */
export const UNKNOWN_STATE = 'unknown_state';
/** {@link IdentityLoginError.code}: the IdP answered with an error response (RFC 6749 §4.1.2.1); see `idpError`. */
export const IDP_REFUSED = 'idp_refused';
/** {@link IdentityLoginError.code}: the authorization response failed validation (wrong `iss`, RFC 9207 §2.4; no `code`). */
export const INVALID_AUTHORIZATION_RESPONSE = 'invalid_authorization_response';
/** {@link IdentityLoginError.code}: the token endpoint refused the code exchange (RFC 6749 §5.2). */
export const TOKEN_REQUEST_FAILED = 'token_request_failed';
/** {@link IdentityLoginError.code}: the token response or its ID token failed validation (OpenID Connect Core 1.0 §3.1.3.7). */
export const INVALID_TOKEN_RESPONSE = 'invalid_token_response';
/** {@link IdentityLoginError.code}: the IdP could not be reached or its metadata could not be loaded. */
export const IDP_UNAVAILABLE = 'idp_unavailable';

/** One of the `IdentityLoginError` codes above. */
export type IdentityLoginErrorCode =
  | typeof UNKNOWN_STATE
  | typeof IDP_REFUSED
  | typeof INVALID_AUTHORIZATION_RESPONSE
  | typeof TOKEN_REQUEST_FAILED
  | typeof INVALID_TOKEN_RESPONSE
  | typeof IDP_UNAVAILABLE;

/**
 * A sign-in at the IdP that did not produce a user. The message is fit for the user and the log:
 * it never holds a code, state, verifier, nonce or token (the `cause` may, so never log it).
 */
export class IdentityLoginError extends Error {
  override name = 'IdentityLoginError';
  readonly code: IdentityLoginErrorCode;
  /** The IdP's `error` code, for {@link IDP_REFUSED} and {@link TOKEN_REQUEST_FAILED}. */
  readonly idpError: string | undefined;

  constructor(code: IdentityLoginErrorCode, message: string, options: { cause?: unknown; idpError?: string } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.idpError = options.idpError;
  }
}

/** A sign-in found by the `state` the IdP sent back. */
export interface StartedLogin extends PendingLogin {
  state: string;
}

/** `identity.oidc` of the configuration plus what the sign-in needs around it. */
export interface OidcLoginOptions {
  issuer: string;
  clientId: string;
  /** Sent with `client_secret_basic` (RFC 6749 §2.3.1); without it the gateway is a public client. */
  clientSecret?: string | undefined;
  /** Must include `openid`. */
  scopes: string[];
  /** `<publicUrl>/oauth/idp/callback`, registered at the IdP. */
  redirectUri: string;
  pending: PendingLogins;
  /** Per request to the IdP. Default 10 s. */
  timeoutMs?: number;
  /** Keeps the IdP's tokens of each finished sign-in (sealed), for exchanges on the user's behalf later. */
  tokens?: IdpTokens | undefined;
}

const metadataMaxAgeMs = 60 * 60_000;

// RFC 6749 §4.1.2.1: error codes are %x20-21 / %x23-5B / %x5D-7E; anything else is not shown.
function safeErrorCode(value: string | undefined): string {
  return value && /^[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}$/.test(value) ? value : 'unknown_error';
}

/**
 * Signs the user in at the configured OpenID Provider with the authorization code flow
 * (OpenID Connect Core 1.0 §3.1): discovery (OpenID Connect Discovery 1.0 §4), PKCE S256
 * (RFC 7636), `state` and `nonce`, the `iss` check of RFC 9207 when the IdP sends it, and full ID
 * token validation including its signature. The user id is the ID token's `sub`.
 */
export class OidcLogin {
  readonly #options: OidcLoginOptions;
  readonly #client: oauth.Client;
  readonly #auth: oauth.ClientAuth;
  // The config admits plain http only for a loopback issuer (a development IdP).
  readonly #allowHttpForLoopbackIssuer: boolean;
  readonly #jwks: oauth.JWKSCacheInput = {};
  #metadata: { as: oauth.AuthorizationServer; at: number } | undefined;
  #discovering: Promise<oauth.AuthorizationServer> | undefined;

  constructor(options: OidcLoginOptions) {
    this.#options = options;
    this.#client = { client_id: options.clientId };
    this.#auth = options.clientSecret ? oauth.ClientSecretBasic(options.clientSecret) : oauth.None();
    this.#allowHttpForLoopbackIssuer = new URL(options.issuer).protocol === 'http:';
  }

  /**
   * Starts a sign-in for a consent flow (OpenID Connect Core 1.0 §3.1.2.1): remembers a fresh
   * verifier, state and nonce server-side and returns the IdP authorization URL to send the
   * browser to. Rejects with {@link IDP_UNAVAILABLE} when the IdP's metadata cannot be loaded.
   */
  async start(flowId: string): Promise<string> {
    const as = await this.#discover();
    const state = oauth.generateRandomState();
    const codeVerifier = oauth.generateRandomCodeVerifier();
    const nonce = oauth.generateRandomNonce();
    const url = new URL(as.authorization_endpoint!);
    url.searchParams.set('client_id', this.#options.clientId);
    url.searchParams.set('redirect_uri', this.#options.redirectUri);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('scope', this.#options.scopes.join(' '));
    url.searchParams.set('state', state);
    url.searchParams.set('nonce', nonce);
    url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(codeVerifier));
    url.searchParams.set('code_challenge_method', 'S256');
    await this.#options.pending.save(state, { flowId, codeVerifier, nonce });
    return url.href;
  }

  /**
   * The sign-in a callback belongs to, found by its `state`, without using it up: the caller
   * checks the browser first, so a callback opened elsewhere leaves the sign-in intact.
   * Rejects with {@link UNKNOWN_STATE}.
   */
  async pendingFor(parameters: URLSearchParams): Promise<StartedLogin> {
    const states = parameters.getAll('state');
    const state = states.length === 1 ? states[0] : undefined;
    const login = state && state.length <= 512 ? await this.#options.pending.find(state) : undefined;
    if (!state || !login) {
      throw new IdentityLoginError(UNKNOWN_STATE, 'This sign-in response does not belong to a sign-in in progress here, or it has expired or was already used.');
    }
    return { ...login, state };
  }

  /**
   * Finishes a sign-in from the IdP's redirect (RFC 6749 §4.1.2, RFC 9207 §2.4): uses the pending
   * sign-in up, validates the response, exchanges the code (RFC 6749 §4.1.3 with the verifier),
   * validates the ID token (OpenID Connect Core 1.0 §3.1.3.7) and returns its `sub`.
   * Rejects with an {@link IdentityLoginError}.
   */
  async finish(parameters: URLSearchParams, login: StartedLogin): Promise<string> {
    await this.#options.pending.discard(login.state);
    const as = await this.#discover();
    let callback: URLSearchParams;
    try {
      callback = oauth.validateAuthResponse(as, this.#client, parameters, login.state);
    } catch (error) {
      if (error instanceof oauth.AuthorizationResponseError) {
        const idpError = safeErrorCode(error.error);
        throw new IdentityLoginError(IDP_REFUSED, `The identity provider did not sign you in (${idpError}).`, { cause: error, idpError });
      }
      throw new IdentityLoginError(INVALID_AUTHORIZATION_RESPONSE, `The identity provider's answer was not accepted: ${(error as Error).message}.`, { cause: error });
    }

    let response: Response;
    try {
      response = await oauth.authorizationCodeGrantRequest(as, this.#client, this.#auth, callback, this.#options.redirectUri, login.codeVerifier, this.#http());
    } catch (error) {
      throw new IdentityLoginError(IDP_UNAVAILABLE, "The identity provider's token endpoint could not be reached.", { cause: error });
    }
    let tokens: oauth.TokenEndpointResponse;
    try {
      tokens = await oauth.processAuthorizationCodeResponse(as, this.#client, response, { expectedNonce: login.nonce, requireIdToken: true });
    } catch (error) {
      if (error instanceof oauth.ResponseBodyError || error instanceof oauth.WWWAuthenticateChallengeError) {
        const idpError = safeErrorCode(error instanceof oauth.ResponseBodyError ? error.error : error.cause[0]?.parameters.error);
        throw new IdentityLoginError(TOKEN_REQUEST_FAILED, `The identity provider refused to complete the sign-in (${idpError}).`, { cause: error, idpError });
      }
      throw new IdentityLoginError(INVALID_TOKEN_RESPONSE, `The identity provider's token response was not accepted: ${(error as Error).message}.`, { cause: error });
    }
    try {
      // Defence in depth: TLS already authenticates the token endpoint, but a development IdP may be plain http.
      await oauth.validateApplicationLevelSignature(as, response, { ...this.#http(), [oauth.jwksCache]: this.#jwks });
    } catch (error) {
      throw new IdentityLoginError(INVALID_TOKEN_RESPONSE, `The identity provider's ID token signature was not accepted: ${(error as Error).message}.`, { cause: error });
    }
    const claims = oauth.getValidatedIdTokenClaims(tokens);
    const subject = claims?.sub;
    const userId = validUserId(subject);
    if (userId === undefined || userId !== subject) {
      throw new IdentityLoginError(INVALID_TOKEN_RESPONSE, 'The identity provider sent a user identifier the gateway cannot use.');
    }
    if (this.#options.tokens && tokens.id_token && claims) {
      await this.#options.tokens.save(userId, { idToken: tokens.id_token, ...(tokens.access_token ? { accessToken: tokens.access_token } : {}), expiresAt: claims.exp });
    }
    return userId;
  }

  /**
   * A token exchange at the IdP's token endpoint (RFC 8693 §2.1) as the gateway's client there,
   * e.g. for an ID-JAG. Resolves with the issued token and its lifetime; rejects with an
   * {@link IdentityLoginError}: {@link TOKEN_REQUEST_FAILED} when the IdP refuses (its `error` in
   * `idpError`), {@link IDP_UNAVAILABLE} when it cannot be reached.
   */
  async exchange(parameters: URLSearchParams): Promise<{ token: string; issuedTokenType: string | undefined; expiresIn: number | undefined }> {
    const as = await this.#discover();
    let response: Response;
    try {
      response = await oauth.genericTokenEndpointRequest(as, this.#client, this.#auth, 'urn:ietf:params:oauth:grant-type:token-exchange', parameters, this.#http());
    } catch (error) {
      throw new IdentityLoginError(IDP_UNAVAILABLE, "The identity provider's token endpoint could not be reached.", { cause: error });
    }
    try {
      // RFC 8693 §2.2.1: a token that is not an access token comes with token_type N_A.
      const answer = await oauth.processGenericTokenEndpointResponse(as, this.#client, response, { recognizedTokenTypes: { n_a: () => undefined } });
      const issued = answer.issued_token_type;
      return { token: answer.access_token, issuedTokenType: typeof issued === 'string' ? issued : undefined, expiresIn: answer.expires_in };
    } catch (error) {
      if (error instanceof oauth.ResponseBodyError) {
        const idpError = safeErrorCode(error.error);
        throw new IdentityLoginError(TOKEN_REQUEST_FAILED, `The identity provider refused the token exchange (${idpError}).`, { cause: error, idpError });
      }
      throw new IdentityLoginError(INVALID_TOKEN_RESPONSE, `The identity provider's token exchange response was not accepted: ${(error as Error).message}.`, { cause: error });
    }
  }

  async #discover(): Promise<oauth.AuthorizationServer> {
    if (this.#metadata && Date.now() - this.#metadata.at < metadataMaxAgeMs) return this.#metadata.as;
    this.#discovering ??= this.#load().finally(() => {
      this.#discovering = undefined;
    });
    return this.#discovering;
  }

  async #load(): Promise<oauth.AuthorizationServer> {
    const issuer = new URL(this.#options.issuer);
    try {
      const response = await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...this.#http() });
      const as = await oauth.processDiscoveryResponse(issuer, response);
      if (!as.authorization_endpoint || !as.token_endpoint || !as.jwks_uri) throw new Error('the metadata lacks authorization_endpoint, token_endpoint or jwks_uri');
      this.#metadata = { as, at: Date.now() };
      return as;
    } catch (error) {
      throw new IdentityLoginError(IDP_UNAVAILABLE, `The identity provider's metadata could not be loaded: ${(error as Error).message}.`, { cause: error });
    }
  }

  #http() {
    const timeoutMs = this.#options.timeoutMs ?? 10_000;
    return { signal: () => AbortSignal.timeout(timeoutMs), [oauth.allowInsecureRequests]: this.#allowHttpForLoopbackIssuer };
  }
}

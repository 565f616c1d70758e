/**
 * An error the client should see, named after its OAuth 2.0 / RFC 6750 error code.
 * The error middleware renders `{error, error_description}` with this status.
 */
export class OAuthError extends Error {
  override name = 'OAuthError';

  constructor(
    readonly status: number,
    readonly errorCode: string,
    description: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(description);
  }

  /** The RFC 6749 §5.2 error body. */
  toResponseObject(): { error: string; error_description: string } {
    return { error: this.errorCode, error_description: this.message };
  }
}

/** What a thrower may change about a coded error: another status of the same family, headers (`WWW-Authenticate`). */
export interface OAuthErrorOptions {
  status?: number;
  headers?: Record<string, string>;
}

/** The base of one error code: its code as a static constant, its usual status, a description from the thrower. */
function errorCode<const Code extends string>(code: Code, status: number) {
  return class extends OAuthError {
    static readonly code: Code = code;

    constructor(description: string, options: OAuthErrorOptions = {}) {
      super(options.status ?? status, code, description, options.headers);
    }
  };
}

/** RFC 6749 §5.2 `invalid_request`: a missing, malformed or unacceptable parameter or body (400; 413 or 415 for the body's size or type). */
export class InvalidRequestError extends errorCode('invalid_request', 400) {}

/** RFC 6749 §5.2 `invalid_client`: the client is unknown or gone. */
export class InvalidClientError extends errorCode('invalid_client', 400) {}

/** RFC 6750 §3.1 `invalid_token`: no usable access token; throwers add the `WWW-Authenticate` challenge. */
export class InvalidTokenError extends errorCode('invalid_token', 401) {}

/** RFC 6750 §3.1 `insufficient_scope`: the token lacks a scope the resource needs. */
export class InsufficientScopeError extends errorCode('insufficient_scope', 403) {}

/** RFC 6749 §4.1.2.1 `access_denied`: refused (another browser, a failed CSRF check, the API turned off). */
export class AccessDeniedError extends errorCode('access_denied', 403) {}

/** OpenID Connect Core §3.1.2.6 `login_required`: the page needs a signed-in user. */
export class LoginRequiredError extends errorCode('login_required', 401) {}

/** `invalid_transition`: a consent step sent while the flow is at another step. */
export class InvalidTransitionError extends errorCode('invalid_transition', 409) {}

/** `expired`: the sign-in request (consent flow, interaction) ran out of time. */
export class ExpiredError extends errorCode('expired', 410) {}

/** 404 for an unknown path or object, in the same JSON shape as every other error. */
export class NotFoundError extends errorCode('not_found', 404) {
  constructor(description = 'no such endpoint') {
    super(description);
  }
}

/** RFC 6749 §5.2 `temporarily_unavailable`: a dependency (Temporal, the store, an upstream) is down; retrying later may work (503, or 502 for an upstream). */
export class TemporarilyUnavailableError extends errorCode('temporarily_unavailable', 503) {}

/** RFC 6749 `server_error`: anything unexpected. Carries nothing internal. */
export class ServerError extends OAuthError {
  constructor() {
    super(500, 'server_error', 'the gateway could not handle this request; it has been logged');
  }
}

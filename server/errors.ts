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

/** 404 for an unknown path, in the same JSON shape as every other error. */
export class NotFoundError extends OAuthError {
  constructor(description = 'no such endpoint') {
    super(404, 'not_found', description);
  }
}

/** RFC 6749 `server_error`: anything unexpected. Carries nothing internal. */
export class ServerError extends OAuthError {
  constructor() {
    super(500, 'server_error', 'the gateway could not handle this request; it has been logged');
  }
}

/** 503 when a dependency (Temporal, the store) is down: retrying later may work. */
export class TemporarilyUnavailableError extends OAuthError {
  constructor(description: string) {
    super(503, 'temporarily_unavailable', description);
  }
}

import { describe, expect, it } from 'vitest';
import {
  AccessDeniedError,
  ExpiredError,
  InsufficientScopeError,
  InvalidClientError,
  InvalidRequestError,
  InvalidTokenError,
  InvalidTransitionError,
  LoginRequiredError,
  NotFoundError,
  OAuthError,
  TemporarilyUnavailableError,
} from '../../server/errors.js';

describe('OAuth error family', () => {
  it('gives each code its status, its static code and the RFC 6749 §5.2 body', () => {
    const cases = [
      [new InvalidRequestError('bad'), 400, 'invalid_request'],
      [new InvalidClientError('bad'), 400, 'invalid_client'],
      [new InvalidTokenError('bad'), 401, 'invalid_token'],
      [new LoginRequiredError('bad'), 401, 'login_required'],
      [new AccessDeniedError('bad'), 403, 'access_denied'],
      [new InsufficientScopeError('bad'), 403, 'insufficient_scope'],
      [new NotFoundError('bad'), 404, 'not_found'],
      [new InvalidTransitionError('bad'), 409, 'invalid_transition'],
      [new ExpiredError('bad'), 410, 'expired'],
      [new TemporarilyUnavailableError('bad'), 503, 'temporarily_unavailable'],
    ] as const;
    for (const [error, status, code] of cases) {
      expect(error).toBeInstanceOf(OAuthError);
      expect({ status: error.status, code: (error.constructor as { code?: string }).code, body: error.toResponseObject(), headers: error.headers }).toEqual({
        status,
        code,
        body: { error: code, error_description: 'bad' },
        headers: {},
      });
    }
  });

  it('takes another status of the same code and headers from the thrower', () => {
    const tooLarge = new InvalidRequestError('the body is too large', { status: 413 });
    expect([tooLarge.status, tooLarge.errorCode]).toEqual([413, 'invalid_request']);
    const challenge = new InvalidTokenError('a token is required', { headers: { 'WWW-Authenticate': 'Bearer realm="x"' } });
    expect([challenge.status, challenge.headers]).toEqual([401, { 'WWW-Authenticate': 'Bearer realm="x"' }]);
  });

  it('describes an unknown path by default', () => {
    expect(new NotFoundError().toResponseObject()).toEqual({ error: 'not_found', error_description: 'no such endpoint' });
  });
});

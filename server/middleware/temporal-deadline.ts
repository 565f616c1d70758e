import type { Client } from '@temporalio/client';
import type { Context, Next } from 'koa';
import { OAuthError } from '../errors.js';
import { isTemporalUnreachable, withTemporalDeadline } from '../temporal/client.js';

/** The error of a request whose Temporal calls did not answer in time: 503 with `Retry-After`. */
export class FlowServiceUnavailableError extends OAuthError {
  constructor(retryAfterSeconds: number) {
    super(503, 'temporarily_unavailable', 'the consent service is briefly unavailable; your sign-in will continue where it stopped, try again in a moment', {
      'Retry-After': String(retryAfterSeconds),
    });
  }
}

/**
 * Bounds the Temporal calls of the requests below it: each request's calls share one deadline
 * `timeoutMs` away, and a Temporal that is down or too slow becomes {@link FlowServiceUnavailableError}
 * (the error middleware renders it as a page for a browser, as JSON for the page APIs) instead of a
 * request that waits out the client's retries and ends in `server_error`.
 */
export function temporalDeadline(client: Client, timeoutMs: number) {
  const retryAfterSeconds = Math.max(1, Math.ceil(timeoutMs / 1000));
  return async function boundTemporalCalls(ctx: Context, next: Next): Promise<void> {
    try {
      await withTemporalDeadline(client, timeoutMs, next);
    } catch (error) {
      if (!(error instanceof OAuthError) && isTemporalUnreachable(error)) throw new FlowServiceUnavailableError(retryAfterSeconds);
      throw error;
    }
  };
}

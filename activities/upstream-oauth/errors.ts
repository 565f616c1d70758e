import { ApplicationFailure } from '@temporalio/activity';
import * as oauth from 'oauth4webapi';

/** An OAuth error from the upstream that retrying cannot fix, typed with the upstream's error code. */
function permanent(error: unknown, upstream: string): ApplicationFailure {
  if (error instanceof oauth.ResponseBodyError) {
    return ApplicationFailure.nonRetryable(`${upstream} refused: ${error.error}${error.error_description ? ` (${error.error_description})` : ''}`, error.error);
  }
  if (error instanceof oauth.AuthorizationResponseError) {
    return ApplicationFailure.nonRetryable(`${upstream} refused: ${error.error}`, error.error);
  }
  if (error instanceof oauth.OperationProcessingError) {
    return ApplicationFailure.nonRetryable(`${upstream} answered something the gateway cannot accept: ${error.message}`, 'invalid_response');
  }
  return ApplicationFailure.nonRetryable(`${upstream}: ${(error as Error).message}`, 'server_error');
}

/** True for failures worth retrying: the network, timeouts, 5xx. */
function transient(error: unknown): boolean {
  if (error instanceof oauth.ResponseBodyError) return error.status >= 500;
  if (error instanceof oauth.OperationProcessingError || error instanceof oauth.AuthorizationResponseError) return false;
  return true;
}

/**
 * Runs a call to `upstream`'s authorization server the way activities report failures: an
 * `ApplicationFailure` passes through, a transient failure (network, timeout, 5xx) is thrown as is
 * so Temporal retries it, and anything else becomes a non-retryable failure typed with the OAuth
 * error code.
 */
export async function withUpstreamErrors<T>(upstream: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof ApplicationFailure || transient(error)) throw error;
    throw permanent(error, upstream);
  }
}

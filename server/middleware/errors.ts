import type { Context, Next } from 'koa';
import { OAuthError, ServerError } from '../errors.js';
import type { Logger } from '../log.js';

/**
 * The one error-handling middleware: known errors become their OAuth error JSON; anything else is
 * logged and becomes a generic `server_error` with nothing internal in the body.
 */
export function errorHandler(log: Logger) {
  return async function handleErrors(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
    } catch (caught) {
      let error: OAuthError;
      if (caught instanceof OAuthError) {
        error = caught;
      } else if (isClientHttpError(caught)) {
        error = new OAuthError(caught.status, caught.status === 413 ? 'request_too_large' : 'invalid_request', caught.message);
      } else {
        log.error('unhandled error', { method: ctx.method, path: ctx.path, error: caught instanceof Error ? (caught.stack ?? caught.message) : String(caught) });
        error = new ServerError();
      }
      ctx.status = error.status;
      ctx.set(error.headers);
      ctx.set('Cache-Control', 'no-store');
      ctx.body = error.toResponseObject();
    }
  };
}

function isClientHttpError(error: unknown): error is { status: number; message: string; expose: true } {
  const candidate = error as { status?: unknown; expose?: unknown } | null;
  return typeof candidate?.status === 'number' && candidate.status >= 400 && candidate.status < 500 && candidate.expose === true;
}

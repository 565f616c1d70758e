import type { Context, Next } from 'koa';
import { OAuthError, ServerError } from '../errors.js';
import type { Logger } from '../log.js';
import { renderMessage } from '../message-page.js';
import { FlowServiceBusyError } from './flow-admission.js';

/**
 * The one error-handling middleware: known errors become their OAuth error JSON; anything else is
 * logged and becomes a generic `server_error` with nothing internal in the body. A browser's page
 * load that is refused for now (429, 503) gets a readable page instead, with the same `Retry-After`.
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
        log.error('unhandled error', { method: ctx.method, path: ctx.path, error: caught instanceof Error ? (caught.stack ?? caught.message) : String(caught), cause: caught instanceof Error && caught.cause ? String((caught.cause as Error).message ?? caught.cause) : undefined });
        error = new ServerError();
      }
      ctx.status = error.status;
      ctx.set(error.headers);
      ctx.set('Cache-Control', 'no-store');
      const page = browserPage(ctx, error);
      if (page) {
        ctx.type = 'html';
        ctx.body = page;
      } else {
        ctx.body = error.toResponseObject();
      }
    }
  };
}

function isClientHttpError(error: unknown): error is { status: number; message: string; expose: true } {
  const candidate = error as { status?: unknown; expose?: unknown } | null;
  return typeof candidate?.status === 'number' && candidate.status >= 400 && candidate.status < 500 && candidate.expose === true;
}

/** Whether the request is a browser loading a page (it prefers HTML to JSON), not a page's API call. */
function wantsPage(ctx: Context): boolean {
  return ctx.method === 'GET' && ctx.accepts('json', 'html') === 'html';
}

/** The page of a 429 or 503 for a browser; `undefined` for everything else, which stays JSON. */
function browserPage(ctx: Context, error: OAuthError): string | undefined {
  if (!wantsPage(ctx)) return undefined;
  const retryAfter = error.headers['Retry-After'];
  const wait = retryAfter ? `Try again in ${retryAfter} second${retryAfter === '1' ? '' : 's'}.` : 'Try again in a moment.';
  if (error.status === 503) {
    return renderMessage({
      title: 'Briefly unavailable',
      sentences: [
        `${error instanceof FlowServiceBusyError ? 'The gateway is busy with other sign-ins right now.' : 'The gateway cannot reach its consent service right now.'} Nothing is lost: your sign-in will continue where it stopped.`,
        `${wait} Reload this page to continue.`,
      ],
      errorCode: error.errorCode,
    });
  }
  if (error.status === 429) {
    return renderMessage({ title: 'Too many requests', sentences: [error.message.charAt(0).toUpperCase() + error.message.slice(1) + '.', wait], errorCode: error.errorCode });
  }
  return undefined;
}

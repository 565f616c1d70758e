import type { ProviderContext } from 'oidc-provider';
import { renderErrorPage } from './error-page.js';

/**
 * oidc-provider middleware around every request the OAuth server serves:
 * - a `Host` that is not one of the gateway's names (`http.allowedHosts`) is refused with 400: the
 *   provider builds the endpoint URLs of its discovery document and registration responses from
 *   the request's host, so a forged one would be handed back to clients (and to any cache in front);
 * - a path it has no route for answers the gateway's JSON 404, not a bare `Not Found` text.
 */
export function providerRequestGuards(allowedHosts: readonly string[]) {
  const hosts = new Set(allowedHosts.map((host) => host.toLowerCase()));
  return async function guardProviderRequests(ctx: ProviderContext, next: () => Promise<void>): Promise<void> {
    if (!hosts.has(ctx.host.toLowerCase())) {
      const description = `the Host header ${JSON.stringify(ctx.host.slice(0, 100))} is not one of this gateway's names`;
      ctx.status = 400;
      ctx.set('Cache-Control', 'no-store');
      if (ctx.method === 'GET' && ctx.path.startsWith('/auth')) {
        ctx.type = 'html';
        ctx.body = renderErrorPage('invalid_request', description);
      } else {
        ctx.body = { error: 'invalid_request', error_description: description };
      }
      return;
    }
    await next();
    if (ctx.status === 404 && ctx.body == null) {
      ctx.status = 404;
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { error: 'not_found', error_description: `no such endpoint: ${ctx.method} ${ctx.path.slice(0, 80)}` };
    }
  };
}

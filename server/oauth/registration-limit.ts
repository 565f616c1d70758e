import type { ProviderContext } from 'oidc-provider';
import { clientAddress } from '../config/trusted-proxies.js';
import { addressKey, type RateLimiter } from '../limits/rate-limit.js';

/**
 * oidc-provider middleware in front of dynamic registration (RFC 7591 §3): a request must say how
 * large it is, at most 16 KiB, and each client address gets what `perAddress` allows. The address
 * is the one `trustedProxyHops` proxies from the right of `X-Forwarded-For`, never an entry the
 * client could write itself; it also becomes the request's `ctx.ip` (the audit trail's source).
 */
export function registrationLimit(perAddress: RateLimiter, trustedProxyHops: number) {
  return async function limitRegistration(ctx: ProviderContext, next: () => Promise<void>) {
    ctx.request.ip = clientAddress(ctx.req.socket.remoteAddress, ctx.req.headers['x-forwarded-for'], trustedProxyHops);
    if (ctx.method === 'POST' && ctx.path === '/reg') {
      if (!ctx.get('content-length')) {
        ctx.status = 411;
        ctx.body = { error: 'invalid_request', error_description: 'registration requests must carry Content-Length' };
        return;
      }
      if (Number(ctx.get('content-length')) > 16 * 1024) {
        ctx.status = 413;
        ctx.body = { error: 'invalid_client_metadata', error_description: 'registration requests are limited to 16 KiB' };
        return;
      }
      const verdict = await perAddress(addressKey(ctx.ip));
      if (!verdict.allowed) {
        ctx.status = 429;
        ctx.set('Retry-After', String(verdict.retryAfterSeconds));
        ctx.body = { error: 'temporarily_unavailable', error_description: `too many registrations from this address; retry in ${verdict.retryAfterSeconds} s` };
        return;
      }
    }
    await next();
  };
}

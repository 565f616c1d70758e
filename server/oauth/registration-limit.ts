import { createHash } from 'node:crypto';
import type { ProviderContext } from 'oidc-provider';
import type { RateLimitStore } from '../store/store.js';

/**
 * A sliding one-minute window per key, kept in the store so that every process of a fleet counts
 * the same hits; keys are hashed, so client addresses are not stored as they are.
 */
function rateLimiter(store: RateLimitStore, limit: number) {
  return (key: string): Promise<boolean> => store.takeHit(`registration:${createHash('sha256').update(key).digest('base64url')}`, Date.now(), 60_000, limit);
}

/**
 * oidc-provider middleware in front of dynamic registration (RFC 7591 §3): a request must say how
 * large it is, at most 16 KiB, and each client address may register `perMinute` clients a minute.
 */
export function registrationLimit(store: RateLimitStore, perMinute: number) {
  const allowRegistration = rateLimiter(store, perMinute);
  return async function limitRegistration(ctx: ProviderContext, next: () => Promise<void>) {
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
      if (!(await allowRegistration(ctx.ip))) {
        ctx.status = 429;
        ctx.set('Retry-After', '60');
        ctx.body = { error: 'temporarily_unavailable', error_description: 'too many registrations from this address; retry in a minute' };
        return;
      }
    }
    await next();
  };
}

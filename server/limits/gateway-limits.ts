import type { Context, Next } from 'koa';
import type { GatewayConfig } from '../config.js';
import { clientAddress } from '../config/trusted-proxies.js';
import { OAuthError } from '../errors.js';
import type { RateLimitStore } from '../store/store.js';
import { addressKey, rateLimitBackend, rateLimiter, type RateLimiter, type RateLimitVerdict } from './rate-limit.js';

/** 429 `temporarily_unavailable` with `Retry-After` (RFC 6585 §4). */
export class TooManyRequestsError extends OAuthError {
  constructor(description: string, retryAfterSeconds: number) {
    super(429, 'temporarily_unavailable', description, { 'Retry-After': String(retryAfterSeconds) });
  }
}

/** Every limit of the gateway, on one backend (see `rate-limit.ts`). */
export interface GatewayLimits {
  /** Dynamic registrations per client address. */
  registration: RateLimiter;
  /** `/auth` requests per client address and per client id. */
  authorization: { perAddress: RateLimiter; perClient: RateLimiter };
  /** Consent page loads per client address and per client id. */
  consentPage: { perAddress: RateLimiter; perClient: RateLimiter };
  /** Consent flows started per client within one flow lifetime. */
  pendingFlows: RateLimiter;
}

/** Builds the gateway's limits from `limits`, `oauth.registrationsPerMinute` and `flowTtl`. */
export function createGatewayLimits(config: GatewayConfig, store: RateLimitStore): GatewayLimits {
  const backend = rateLimitBackend(config.store, store, config.limits.trackedKeys);
  const perMinute = (name: string, limit: number) => rateLimiter(backend, { name, limit, windowMs: 60_000 });
  return {
    registration: perMinute('registration', config.oauth.registrationsPerMinute),
    authorization: { perAddress: perMinute('authorization-address', config.limits.authorization.perAddress), perClient: perMinute('authorization-client', config.limits.authorization.perClient) },
    consentPage: { perAddress: perMinute('consent-page-address', config.limits.consentPage.perAddress), perClient: perMinute('consent-page-client', config.limits.consentPage.perClient) },
    pendingFlows: rateLimiter(backend, { name: 'pending-flows', limit: config.limits.pendingFlowsPerClient, windowMs: config.flowTtlMs }),
  };
}

/**
 * Takes a hit from each limiter of a pair: the request's address, then its client. Throws
 * {@link TooManyRequestsError} naming which one refused.
 */
export async function requireWithinLimits(pair: { perAddress: RateLimiter; perClient: RateLimiter }, address: string, clientId: string | undefined, what: string): Promise<void> {
  const refuse = (verdict: RateLimitVerdict, whose: string) => {
    if (!verdict.allowed) throw new TooManyRequestsError(`too many ${what} ${whose}; retry in ${verdict.retryAfterSeconds} s`, verdict.retryAfterSeconds);
  };
  refuse(await pair.perAddress(addressKey(address)), 'from this address');
  if (clientId) refuse(await pair.perClient(clientId), 'for this application');
}

/**
 * Sets `ctx.ip` to the client's address behind `trustedProxyHops` proxies (see `clientAddress`),
 * so limits and the audit trail see the same address and never one the client wrote itself.
 */
export function clientAddressOf(trustedProxyHops: number) {
  return async function setClientAddress(ctx: Context, next: Next): Promise<void> {
    ctx.request.ip = clientAddress(ctx.req.socket.remoteAddress, ctx.req.headers['x-forwarded-for'], trustedProxyHops);
    await next();
  };
}

/** Limits authorization requests (`GET`/`POST /auth`, RFC 6749 §3.1) per client address and per `client_id`. */
export function authorizationLimit(limits: GatewayLimits) {
  return async function limitAuthorization(ctx: Context, next: Next): Promise<void> {
    if (ctx.path === '/auth' && (ctx.method === 'GET' || ctx.method === 'POST')) {
      const clientId = typeof ctx.query['client_id'] === 'string' ? ctx.query['client_id'] : undefined;
      await requireWithinLimits(limits.authorization, ctx.ip, clientId?.slice(0, 512), 'sign-in requests');
    }
    await next();
  };
}

import type { Context, Next } from 'koa';

/** Where a request may come from: `Host` values (host[:port]) and `Origin` values (an origin, or `scheme://host:*` for any port). */
export interface HostOriginPolicy {
  allowedHosts: readonly string[];
  allowedOrigins: readonly string[];
}

/**
 * Refuses requests whose `Host` is not one of the gateway's names, or whose `Origin` (when a
 * browser sent one) is not an allowed origin: the DNS-rebinding guard the MCP transport spec asks
 * for (2025-11-25 Basic/Transports §Security Warning). Answers 403 with a JSON-RPC error.
 */
export function hostOriginGuard(policy: HostOriginPolicy) {
  const hosts = new Set(policy.allowedHosts.map((host) => host.toLowerCase()));
  const origins = new Set(policy.allowedOrigins.map((origin) => origin.toLowerCase()).filter((origin) => !origin.endsWith(':*')));
  // `http://localhost:*`: that origin on any port (browser-based MCP clients served from loopback).
  const anyPort = policy.allowedOrigins.map((origin) => origin.toLowerCase()).filter((origin) => origin.endsWith(':*')).map((origin) => origin.slice(0, -1));
  const originAllowed = (origin: string) => origins.has(origin) || anyPort.some((prefix) => origin.startsWith(prefix) && /^\d{1,5}$/.test(origin.slice(prefix.length)));
  return async function guardHostAndOrigin(ctx: Context, next: Next): Promise<void> {
    const host = ctx.host.toLowerCase();
    const origin = ctx.get('origin').toLowerCase();
    const refusal = !hosts.has(host)
      ? `Forbidden: the Host header ${JSON.stringify(host.slice(0, 100))} is not one of this gateway's names`
      : origin !== '' && !originAllowed(origin)
        ? `Forbidden: requests from the origin ${JSON.stringify(origin.slice(0, 100))} are not allowed`
        : undefined;
    if (refusal === undefined) return next();
    ctx.status = 403;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { jsonrpc: '2.0', error: { code: -32000, message: refusal }, id: null };
  };
}

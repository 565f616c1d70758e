import type { GatewayConfig } from '../config.js';
import { guardedFetch } from '../net/address-guard.js';

/** How long a fetched document, or a failed fetch, is remembered. */
const rememberMs = 60_000;
const maxRemembered = 1_000;

interface Fetched {
  status: number;
  statusText: string;
  headers: [string, string][];
  body: ArrayBuffer;
}

/**
 * oidc-provider's `fetch` for client ID metadata documents (and any other URL a client names): the
 * host must be a name resolving to public addresses only (no IP literal, loopback, private,
 * link-local, CGNAT or metadata address), checked before connecting and pinned for the connection,
 * within 2.5 s. Each URL is fetched at most once a minute, its answer or failure remembered, so one
 * authorization request (which looks its client up several times) opens one connection at most.
 * `hosts` (test-only config) maps host names to a loopback address and CA.
 */
export function metadataFetch(hosts: GatewayConfig['oauth']['dangerouslyResolveMetadataHosts'] = {}) {
  const fetchGuarded = guardedFetch({ refuseIpLiterals: true, timeoutMs: 2_500, maxBodyBytes: 256 * 1024, dangerouslyResolveHosts: hosts });
  const remembered = new Map<string, { until: number; fetched: Promise<Fetched> }>();

  async function fetchOnce(url: string, options: RequestInit): Promise<Fetched> {
    const response = await fetchGuarded(url, { method: 'GET', headers: options.headers ?? { accept: 'application/json' } });
    return { status: response.status, statusText: response.statusText, headers: [...response.headers.entries()], body: await response.arrayBuffer() };
  }

  return async (url: string | URL, options: RequestInit & { dispatcher?: unknown } = {}): Promise<Response> => {
    const key = new URL(url).href;
    const now = Date.now();
    let entry = remembered.get(key);
    if (!entry || entry.until <= now) {
      for (const [stale, { until }] of remembered) if (until <= now || remembered.size >= maxRemembered) remembered.delete(stale);
      entry = { until: now + rememberMs, fetched: fetchOnce(key, options) };
      entry.fetched.catch(() => {});
      remembered.set(key, entry);
    }
    const fetched = await entry.fetched;
    return new Response(fetched.body.slice(0), { status: fetched.status, statusText: fetched.statusText, headers: fetched.headers });
  };
}

import { resolvePrefixed } from './upstream-prefix.js';

/** The URI scheme of resources (and resource templates) the aggregate endpoint lists. */
export const GATEWAY_RESOURCE_SCHEME = 'mcp-upstream';

const PREFIX = `${GATEWAY_RESOURCE_SCHEME}://`;

/**
 * The URI the aggregate endpoint shows for `uri` of `upstream`:
 * `mcp-upstream://<upstream, percent-encoded>/<uri verbatim>`. The upstream's URI is kept as it is
 * after the first `/` so a resource template stays a template: a client fills its variables in
 * the gateway URI and {@link resolveResourceUri} still finds the upstream and the filled-in URI.
 * The upstream name cannot contain an unencoded `/`, so no two (upstream, URI) pairs share a
 * gateway URI.
 */
export function gatewayResourceUri(upstream: string, uri: string): string {
  return `${PREFIX}${encodeURIComponent(upstream)}/${uri}`;
}

/** The upstream and its own URI for a gateway resource URI; `undefined` when it is not one. */
export function resolveResourceUri<U extends { name: string }>(uri: string, upstreams: readonly U[]): { upstream: U; uri: string } | undefined {
  if (!uri.startsWith(PREFIX)) return undefined;
  const target = resolvePrefixed(uri.slice(PREFIX.length), '/', upstreams);
  return target ? { upstream: target.upstream, uri: target.rest } : undefined;
}

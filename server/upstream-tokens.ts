import type { UpstreamConfig } from './config.js';
import type { TokenCipher } from './crypto/token-cipher.js';
import type { McpCaller, McpUpstream } from './mcp/types.js';
import type { GatewayStore } from './store/store.js';

/** Raised when the caller has no usable connection to an upstream that needs one. */
export class UpstreamNotConnectedError extends Error {
  override name = 'UpstreamNotConnectedError';
}

/**
 * The `Authorization` header for a caller's request to an upstream: the caller's own upstream
 * access token, opened from the store, never the MCP client's token (no token passthrough).
 */
export function upstreamTokenHeaders(deps: { store: GatewayStore; cipher: TokenCipher; upstreams: UpstreamConfig[] }) {
  return async (caller: McpCaller, upstream: McpUpstream): Promise<Record<string, string>> => {
    const config = deps.upstreams.find((candidate) => candidate.name === upstream.name);
    if (!config || config.auth === 'none') return {};
    const tokens = await deps.store.getUpstreamTokens(caller.userId, upstream.name);
    if (!tokens || tokens.status !== 'connected') throw new UpstreamNotConnectedError(`${caller.userId} has not connected ${upstream.displayName}`);
    const accessToken = deps.cipher.open(tokens.accessToken, `upstream_tokens:${caller.userId}:${upstream.name}:access`);
    return { Authorization: `Bearer ${accessToken}` };
  };
}

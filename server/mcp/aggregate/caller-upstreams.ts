import type { UpstreamChallenge } from '../bearer-challenge.js';
import type { McpCaller, McpUpstream } from '../types.js';
import type { UpstreamConnectionsOptions } from '../upstream-connections.js';

/** Upstream connection settings of the endpoint, with credentials that depend on the caller. */
export type CallerUpstreamOptions = Omit<UpstreamConnectionsOptions, 'capabilities' | 'onNotification' | 'onRequest' | 'headers' | 'unauthorized' | 'insufficientScope'> & {
  headers(caller: McpCaller, upstream: McpUpstream, request?: { method: string; url: string }): Promise<Record<string, string>>;
  unauthorized?(caller: McpCaller, upstream: McpUpstream, sent: Record<string, string>, retried: boolean, challenge?: UpstreamChallenge): Promise<boolean>;
  insufficientScope?(caller: McpCaller, upstream: McpUpstream, sent: Record<string, string>, scopes: string[]): Promise<boolean>;
};

/** The settings of {@link CallerUpstreamOptions} bound to the caller `caller()` names at each request. */
export function forCaller(options: CallerUpstreamOptions, caller: () => McpCaller): Omit<UpstreamConnectionsOptions, 'capabilities' | 'onNotification' | 'onRequest'> {
  const { headers, unauthorized, insufficientScope, ...settings } = options;
  return {
    ...settings,
    headers: (upstream, request) => headers(caller(), upstream, request),
    ...(unauthorized ? { unauthorized: (upstream: McpUpstream, sent: Record<string, string>, retried: boolean, challenge?: UpstreamChallenge) => unauthorized(caller(), upstream, sent, retried, challenge) } : {}),
    ...(insufficientScope ? { insufficientScope: (upstream: McpUpstream, sent: Record<string, string>, scopes: string[]) => insufficientScope(caller(), upstream, sent, scopes) } : {}),
  };
}

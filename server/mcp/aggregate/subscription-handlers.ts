import type { Server } from '@modelcontextprotocol/server';

import { describeUpstreamFailure } from '../upstream-connections.js';
import type { AggregateHandlerOptions, AggregateScope } from './handlers.js';
import type { UpstreamForwarder } from './upstream-forward.js';

/**
 * Registers on `server` what changes upstream state for the client beyond one request: resource
 * subscriptions (a 2025 session's; MCP 2026-07-28 has `subscriptions/listen` instead) and
 * `logging/setLevel`, sent to every upstream of the scope that offers logging.
 */
export function registerSubscriptionHandlers(server: Server, scope: AggregateScope, options: AggregateHandlerOptions, routes: UpstreamForwarder): void {
  const { log, listTimeoutMs } = options;

  if (scope.era === 'legacy') {
    for (const method of ['resources/subscribe', 'resources/unsubscribe'] as const) {
      server.setRequestHandler(method, async (request) => {
        const target = routes.resourceTarget(request.params.uri);
        try {
          if (method === 'resources/subscribe') await scope.upstreams.subscribeResource(target.upstream, target.uri);
          else await scope.upstreams.unsubscribeResource(target.upstream, target.uri);
        } catch (error) {
          throw routes.upstreamFailure(target.upstream, method, error);
        }
        return {};
      });
    }
  }

  server.setRequestHandler('logging/setLevel', async (request, ctx) => {
    const caller = scope.caller();
    await Promise.all(
      caller.upstreams.map(async (upstream) => {
        try {
          await scope.upstreams.use(upstream, async (client) => {
            if (client.getServerCapabilities()?.logging) await client.setLoggingLevel(request.params.level, { signal: ctx.mcpReq.signal, timeout: listTimeoutMs });
          });
        } catch (error) {
          log.warn('upstream left out of logging/setLevel', { upstream: upstream.name, userId: caller.userId, reason: describeUpstreamFailure(error) });
        }
      }),
    );
    return {};
  });
}

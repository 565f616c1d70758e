import { CLIENT_CAPABILITIES_META_KEY, createMcpHandler, Server, type ClientCapabilities } from '@modelcontextprotocol/server';
import type { Context } from 'koa';

import type { Logger } from '../../log.js';
import type { McpCaller } from '../types.js';
import { offersTasks, safeErrorText, UpstreamConnections, type UpstreamEras } from '../upstream-connections.js';
import { forCaller, type CallerUpstreamOptions } from './caller-upstreams.js';
import { AGGREGATE_CAPABILITIES, aggregateCapabilities, registerAggregateHandlers, type AggregateHandlerOptions } from './handlers.js';
import { relayableCapabilities } from './legacy-sessions.js';
import { ListenStreams } from './listen-streams.js';
import { respondAfterFailure } from './request-guards.js';
import { sendWebResponse } from './web-bridge.js';

/** Settings of {@link createModernServing}. */
export interface ModernServingOptions {
  serverInfo: { name: string; version: string };
  log: Logger;
  handlers: AggregateHandlerOptions;
  maxBodyBytes: number;
  upstreams: CallerUpstreamOptions;
  /** What each upstream was found to speak (shared with the upstream connections). */
  eras: UpstreamEras;
  /** Answers a `tools/call` without an SDK `Server` when it can; true when it did. */
  fastCall(ctx: Context, caller: McpCaller, body: unknown): Promise<boolean>;
}

/** The MCP 2026-07-28 traffic of the aggregate endpoint. */
export interface ModernServing {
  /** Serves one MCP 2026-07-28 POST. */
  serve(ctx: Context, caller: McpCaller, request: () => Request, body: unknown): Promise<void>;
  /** Open `subscriptions/listen` streams in this process. */
  listenStreamCount(): number;
  /** Refuses further requests and ends every listen stream. */
  close(): Promise<void>;
}

/** What the modern leg hands its per-request server factory through `authInfo.extra`. */
interface ModernRequestContext {
  caller: McpCaller;
  capabilities: ClientCapabilities | undefined;
}

/**
 * Creates the MCP 2026-07-28 side of the aggregate endpoint: each request (its `_meta` envelope
 * carrying what a 2025 session held) answered statelessly by a fresh SDK v2 `Server`, so any
 * gateway process can serve any request; a `subscriptions/listen` stream is held with its
 * upstream listeners by the process that serves it (see `ListenStreams`).
 */
export function createModernServing(options: ModernServingOptions): ModernServing {
  const { log, serverInfo, handlers, eras, maxBodyBytes } = options;
  const listenStreams = new ListenStreams({ serverInfo, log, naming: handlers.naming, capabilities: AGGREGATE_CAPABILITIES, maxBodyBytes, upstreams: options.upstreams });
  const modernConnections = (caller: McpCaller, capabilities: ClientCapabilities | undefined) =>
    new UpstreamConnections({ ...forCaller(options.upstreams, () => caller), capabilities: () => relayableCapabilities(capabilities, { tasks: true }) });

  const modern = createMcpHandler(
    ({ authInfo }) => {
      const { caller, capabilities } = authInfo?.extra as unknown as ModernRequestContext;
      const tasks = caller.upstreams.some((upstream) => offersTasks(eras, upstream));
      const server = new Server(serverInfo, { capabilities: aggregateCapabilities(tasks) });
      const scope = { era: 'modern' as const, caller: () => caller, inFlight: new Map(), upstreams: modernConnections(caller, capabilities) };
      registerAggregateHandlers(server, scope, handlers);
      server.onclose = () => void scope.upstreams.closeAll();
      return server;
    },
    { legacy: 'reject', maxRequestBodySize: maxBodyBytes, onerror: (error) => log.debug('mcp request refused', { error: safeErrorText(error) }) },
  );

  /**
   * Connects, once, each upstream of `caller` whose era the gateway has not learnt yet, so a
   * `server/discover` answer can say what the upstreams offer (the MCP Tasks extension).
   */
  async function learnEras(caller: McpCaller): Promise<void> {
    const unknown = caller.upstreams.filter((upstream) => eras.get(upstream.url) === undefined);
    if (unknown.length === 0) return;
    const probe = modernConnections(caller, undefined);
    await Promise.all(unknown.map((upstream) => probe.use(upstream, async () => undefined).catch(() => undefined)));
    await probe.closeAll();
  }

  async function serveListen(ctx: Context, caller: McpCaller, request: () => Request, body: Record<string, unknown>): Promise<void> {
    const stream = await listenStreams.open(caller, body);
    try {
      await sendWebResponse(ctx, await stream.serve(request()));
    } catch (error) {
      log.error('mcp listen stream failed', { userId: caller.userId, error: safeErrorText(error) });
      respondAfterFailure(ctx);
    } finally {
      await stream.close();
    }
  }

  return {
    async serve(ctx, caller, request, body) {
      const message = (Array.isArray(body) ? undefined : body) as { method?: unknown; params?: { _meta?: Record<string, unknown> } } | null | undefined;
      if (message?.method === 'subscriptions/listen') return serveListen(ctx, caller, request, message as Record<string, unknown>);
      if (message?.method === 'server/discover') await learnEras(caller);
      if (await options.fastCall(ctx, caller, body)) return;
      const meta = message?.params?._meta;
      const context: ModernRequestContext = { caller, capabilities: meta?.[CLIENT_CAPABILITIES_META_KEY] as ClientCapabilities | undefined };
      try {
        const response = await modern.fetch(request(), {
          parsedBody: body,
          authInfo: { token: '', clientId: caller.clientId, scopes: [], extra: context as unknown as Record<string, unknown> },
        });
        await sendWebResponse(ctx, response);
      } catch (error) {
        log.error('mcp request failed', { method: ctx.method, userId: caller.userId, error: safeErrorText(error) });
        respondAfterFailure(ctx);
      }
    },

    listenStreamCount: () => listenStreams.streamCount,

    async close() {
      await modern.close();
      await listenStreams.closeAll();
    },
  };
}

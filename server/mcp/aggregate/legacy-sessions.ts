import { randomUUID } from 'node:crypto';

import { Server, WebStandardStreamableHTTPServerTransport, type ClientCapabilities, type ServerContext } from '@modelcontextprotocol/server';
import * as z from 'zod';

import type { Logger } from '../../log.js';
import type { McpCaller, McpUpstream } from '../types.js';
import { safeErrorText, TASKS_EXTENSION, UpstreamConnections, type UpstreamRequest } from '../upstream-connections.js';
import { forCaller, type CallerUpstreamOptions } from './caller-upstreams.js';
import { aggregateCapabilities, registerAggregateHandlers, type AggregateHandlerOptions, type AggregateScope } from './handlers.js';

/** A 2025-era session of the aggregate endpoint, bound to the user and client that opened it. */
export interface LegacySession extends AggregateScope {
  id: string | undefined;
  readonly userId: string;
  readonly clientId: string;
  readonly server: Server;
  readonly transport: WebStandardStreamableHTTPServerTransport;
  /** HTTP exchanges (SSE streams included) in progress. */
  exchanges: number;
  /** The client's requests in progress: id (as JSON text) → ends the HTTP response that carries it. */
  readonly requestIds: Map<string, () => void>;
  idleTimer: NodeJS.Timeout | undefined;
  ended: Promise<void> | undefined;
  /** Follows the caller's current upstream list: a change closes dropped connections and tells the client. */
  refresh(caller: McpCaller): void;
  /** Ends the session and its upstream connections. */
  end(): Promise<void>;
}

/** What {@link openLegacySession} needs. */
export interface LegacySessionOptions {
  serverInfo: { name: string; version: string };
  log: Logger;
  handlers: AggregateHandlerOptions;
  maxBodyBytes: number;
  /** Options for the session's upstream connections, apart from what the session itself decides. */
  upstreams: CallerUpstreamOptions;
  onInitialized(session: LegacySession): void;
  onEnded(session: LegacySession): void;
}

/** Answers to relayed server→client requests are handed back to the upstream as the client sent them. */
const RawAnswer = z.looseObject({});

/** A relayed server→client request waits for a person, as long as the SDK's own shim would. */
const RELAY_TIMEOUT_MS = 10 * 60_000;

/**
 * Opens a 2025-era session (MCP 2025-11-25 Basic/Transports §Session Management) of the aggregate
 * endpoint: an SDK v2 `Server` on a sessionful web-standard transport, with its own upstream
 * connections. Upstream notifications reach this session's client only, and an upstream's
 * server→client request is relayed on the stream of the call that caused it.
 */
export function openLegacySession(caller: McpCaller, options: LegacySessionOptions): LegacySession {
  const { log } = options;
  const server = new Server(options.serverInfo, { capabilities: aggregateCapabilities(false) });
  let current = caller;
  let upstreamKey = keyOf(caller.upstreams);
  /** The upstream list `upstreamKey` was last taken from: a caller checked once keeps the same list. */
  let keyedList = caller.upstreams;

  const notify = (method: string, params?: Record<string, unknown>) => {
    server.notification({ method, ...(params ? { params } : {}) } as never).catch((error: unknown) => log.debug('could not relay a notification', { method, error: safeErrorText(error) }));
  };

  const session: LegacySession = {
    era: 'legacy',
    id: undefined,
    userId: caller.userId,
    clientId: caller.clientId,
    caller: () => current,
    server,
    transport: new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      maxRequestBodySize: options.maxBodyBytes,
      onsessioninitialized: (id) => {
        session.id = id;
        options.onInitialized(session);
      },
      // Awaited before the DELETE is answered, so the upstream sessions are gone by then.
      onsessionclosed: () => session.end(),
    }),
    upstreams: new UpstreamConnections({
      ...forCaller(options.upstreams, () => current),
      capabilities: () => relayableCapabilities(server.getClientCapabilities()),
      onNotification: (upstream, method, params) => {
        if (method === 'notifications/resources/updated' && typeof params?.['uri'] === 'string') {
          notify(method, { ...params, uri: options.handlers.naming.uri(upstream, params['uri']) });
        } else {
          notify(method, params);
        }
      },
      onRequest: (upstream, request, signal) => relay(upstream, request, signal),
    }),
    inFlight: new Map<string, ServerContext[]>(),
    exchanges: 0,
    requestIds: new Map(),
    idleTimer: undefined,
    ended: undefined,
    refresh(caller) {
      current = caller;
      if (caller.upstreams === keyedList) return;
      keyedList = caller.upstreams;
      const key = keyOf(caller.upstreams);
      if (key === upstreamKey) return;
      upstreamKey = key;
      void session.upstreams.retain(caller.upstreams);
      notify('notifications/tools/list_changed');
      notify('notifications/prompts/list_changed');
      notify('notifications/resources/list_changed');
    },
    end() {
      session.ended ??= (async () => {
        clearTimeout(session.idleTimer);
        options.onEnded(session);
        await session.upstreams.closeAll();
      })();
      return session.ended;
    },
  };

  /** Sends the upstream's request to this session's client, on the stream of the latest call to that upstream when there is one. */
  async function relay(upstream: McpUpstream, request: UpstreamRequest, signal: AbortSignal): Promise<Record<string, unknown>> {
    const message = { method: request.method, ...(request.params ? { params: request.params } : {}) };
    const requestOptions = { signal, timeout: RELAY_TIMEOUT_MS, resetTimeoutOnProgress: true };
    const cause = session.inFlight.get(upstream.name)?.at(-1);
    log.debug('relaying an upstream request to the client', { upstream: upstream.name, method: request.method, userId: session.userId });
    return cause ? cause.mcpReq.send(message, RawAnswer, requestOptions) : server.request(message, RawAnswer, requestOptions);
  }

  server.onerror = (error) => log.debug('mcp session error', { userId: session.userId, error: safeErrorText(error) });
  server.onclose = () => void session.end();
  registerAggregateHandlers(server, session, options.handlers);
  return session;
}

/**
 * The part of the client's capabilities an upstream may use through the gateway. With `tasks`
 * (MCP 2026-07-28 requests), a declared MCP Tasks extension (SEP-2663) is passed on too, so the
 * upstream may answer with a task the gateway hands back to the client.
 */
export function relayableCapabilities(capabilities: ClientCapabilities | undefined, options: { tasks?: boolean } = {}): ClientCapabilities {
  const { elicitation, sampling, roots } = capabilities ?? {};
  const tasks = options.tasks ? (capabilities as { extensions?: Record<string, object> } | undefined)?.extensions?.[TASKS_EXTENSION] : undefined;
  return {
    ...(elicitation ? { elicitation } : {}),
    ...(sampling ? { sampling } : {}),
    ...(roots ? { roots: { ...roots, listChanged: false } } : {}),
    ...(tasks ? { extensions: { [TASKS_EXTENSION]: tasks } } : {}),
  } as ClientCapabilities;
}

function keyOf(upstreams: readonly McpUpstream[]): string {
  return JSON.stringify(upstreams.map((upstream) => [upstream.name, upstream.url]).sort());
}

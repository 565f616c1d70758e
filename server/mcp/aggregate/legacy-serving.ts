import { isInitializeRequest } from '@modelcontextprotocol/server';
import type { Context } from 'koa';

import type { Logger } from '../../log.js';
import { JSON_RPC_ERRORS, respondWithJsonRpcError } from '../json-rpc.js';
import type { McpCaller } from '../types.js';
import { safeErrorText } from '../upstream-connections.js';
import type { CallerUpstreamOptions } from './caller-upstreams.js';
import type { AggregateHandlerOptions } from './handlers.js';
import { openLegacySession, type LegacySession } from './legacy-sessions.js';
import { respondAfterFailure } from './request-guards.js';
import { sendWebResponse } from './web-bridge.js';

/** Settings of {@link createLegacyServing}. */
export interface LegacyServingOptions {
  serverInfo: { name: string; version: string };
  log: Logger;
  handlers: AggregateHandlerOptions;
  maxBodyBytes: number;
  upstreams: CallerUpstreamOptions;
  /** See `McpEndpointOptions.sessionIdleTimeoutMs`; `0` never. */
  idleTimeoutMs: number;
  /** See `McpEndpointOptions.maxSessionsPerClient`. */
  maxSessionsPerClient: number;
  /** Answers a POST without the session's `Server` when it can; true when it did. */
  fastCall(ctx: Context, session: LegacySession, caller: McpCaller, body: unknown): Promise<boolean>;
}

/** The 2025-era traffic of the aggregate endpoint, and the sessions that carry it. */
export interface LegacyServing {
  /**
   * Serves a 2025-era POST, or a GET or DELETE: `initialize` without `Mcp-Session-Id` opens a
   * session, anything else goes to the session it names if that is the caller's.
   */
  serve(ctx: Context, caller: McpCaller, request: () => Request, body: unknown): Promise<void>;
  sessionCount(): number;
  hasSession(sessionId: string): boolean;
  /** See `McpEndpoint.elicitationCompleted`. */
  elicitationCompleted(userId: string, clientId: string | undefined, elicitationId: string): Promise<number>;
  /** Ends every session and its upstream connections. */
  close(): Promise<void>;
}

/**
 * Creates the 2025-era side of the aggregate endpoint: sessions bound to the user and client that
 * opened them (MCP 2025-11-25 Basic/Transports §Session Management), at most
 * `maxSessionsPerClient` per user and client, each ended after `idleTimeoutMs` without a request.
 */
export function createLegacyServing(options: LegacyServingOptions): LegacyServing {
  const { log, idleTimeoutMs, maxSessionsPerClient } = options;
  const sessions = new Map<string, LegacySession>();
  /** When each session last had a request: the least recently used idle one is ended first. */
  const lastUsed = new WeakMap<LegacySession, number>();

  function openSession(caller: McpCaller): LegacySession {
    return openLegacySession(caller, {
      serverInfo: options.serverInfo,
      log,
      handlers: options.handlers,
      maxBodyBytes: options.maxBodyBytes,
      upstreams: options.upstreams,
      onInitialized(session) {
        sessions.set(session.id!, session);
        log.info('mcp session started', { userId: session.userId, clientId: session.clientId, sessions: sessions.size });
      },
      onEnded(session) {
        if (session.id === undefined || sessions.get(session.id) !== session) return;
        sessions.delete(session.id);
        log.debug('mcp session ended', { userId: session.userId, clientId: session.clientId, sessions: sessions.size });
      },
    });
  }

  /** Keeps a user × client within `maxSessionsPerClient`: ends their least recently used idle session. */
  async function makeRoomFor(caller: McpCaller): Promise<boolean> {
    const own = [...sessions.values()].filter((session) => session.userId === caller.userId && session.clientId === caller.clientId);
    if (own.length < maxSessionsPerClient) return true;
    const idle = own.filter((session) => session.exchanges === 0).sort((a, b) => (lastUsed.get(a) ?? 0) - (lastUsed.get(b) ?? 0));
    if (idle.length <= own.length - maxSessionsPerClient) return false;
    for (const session of idle.slice(0, own.length - maxSessionsPerClient + 1)) {
      log.info('mcp session ended to make room for a new one', { userId: session.userId, clientId: session.clientId });
      await session.transport.close();
    }
    return true;
  }

  async function serveInSession(ctx: Context, session: LegacySession, caller: McpCaller, request: () => Request, body: unknown): Promise<void> {
    lastUsed.set(session, Date.now());
    await exchange(ctx, session, caller, request, body, options);
  }

  return {
    async serve(ctx, caller, request, body) {
      const sessionId = ctx.get('mcp-session-id');
      if (sessionId === '') {
        const initializing = Array.isArray(body) ? body.some((message) => isInitializeRequest(message)) : isInitializeRequest(body);
        if (!initializing) return respondWithJsonRpcError(ctx, 400, JSON_RPC_ERRORS.transport, 'Bad Request: Mcp-Session-Id header is required', body);
        if (!(await makeRoomFor(caller))) {
          ctx.set('Retry-After', '5');
          return respondWithJsonRpcError(ctx, 429, JSON_RPC_ERRORS.transport, `Too Many Requests: at most ${maxSessionsPerClient} open sessions per user and client; close one first`, body);
        }
        const session = openSession(caller);
        await session.server.connect(session.transport);
        try {
          await serveInSession(ctx, session, caller, request, body);
        } finally {
          // The transport refused the initialize (bad headers, batch): nothing else holds this session.
          if (session.id === undefined) await session.server.close();
        }
        return;
      }

      const session = sessions.get(sessionId);
      if (!session || session.userId !== caller.userId || session.clientId !== caller.clientId) {
        if (session) log.warn('mcp session presented by another identity; refused', { userId: caller.userId, clientId: caller.clientId });
        return respondWithJsonRpcError(ctx, 404, JSON_RPC_ERRORS.sessionNotFound, 'Session not found', body);
      }
      session.refresh(caller);
      await serveInSession(ctx, session, caller, request, body);
    },

    sessionCount: () => sessions.size,
    hasSession: (sessionId) => sessions.has(sessionId),

    async elicitationCompleted(userId, clientId, elicitationId) {
      let told = 0;
      for (const session of sessions.values()) {
        if (session.userId !== userId || (clientId !== undefined && session.clientId !== clientId)) continue;
        if (!session.server.getClientCapabilities()?.elicitation?.url) continue;
        await session.server
          .createElicitationCompletionNotifier(elicitationId)()
          .then(() => (told += 1))
          .catch(() => undefined);
      }
      return told;
    },

    async close() {
      await Promise.all(
        [...sessions.values()].map(async (session) => {
          await session.server.close();
          await session.end();
        }),
      );
    },
  };
}

/** One HTTP exchange of `session`: a POST (its requests and notifications), a GET stream or a DELETE. */
async function exchange(ctx: Context, session: LegacySession, caller: McpCaller, request: () => Request, body: unknown, options: LegacyServingOptions): Promise<void> {
  const { log, idleTimeoutMs } = options;
  // JSON-RPC 2.0 §4: an id names one request. A second request with the id of one still in
  // flight in this session could never get its own answer; it is refused instead.
  const ids = ctx.method === 'POST' ? requestIdsOf(body) : [];
  const duplicate = ids.find((id) => session.requestIds.has(id));
  if (duplicate !== undefined) {
    ctx.status = 409;
    ctx.body = { jsonrpc: '2.0', error: { code: JSON_RPC_ERRORS.invalidRequest, message: 'Invalid Request: a request with this id is still in progress in this session' }, id: JSON.parse(duplicate) as unknown };
    return;
  }
  // MCP 2025-11-25 Basic/Utilities §Cancellation: no answer follows a cancelled request, so its
  // stream is ended here rather than left open until a timeout.
  const endStream = () => {
    if (!ctx.res.writableEnded) ctx.res.end();
  };
  for (const id of ids) session.requestIds.set(id, endStream);
  const cancelled = ctx.method === 'POST' ? cancelledIdsOf(body) : [];
  // The idle timer stays armed: it ends nothing while an exchange is in progress, and the last one to finish re-arms it.
  session.exchanges += 1;
  try {
    if (ctx.method === 'POST' && (await options.fastCall(ctx, session, caller, body))) return;
    const response = await session.transport.handleRequest(request(), ctx.method === 'POST' ? { parsedBody: body } : {});
    for (const id of cancelled) session.requestIds.get(id)?.();
    await sendWebResponse(ctx, response);
  } catch (error) {
    log.error('mcp request failed', { method: ctx.method, userId: session.userId, error: safeErrorText(error) });
    respondAfterFailure(ctx);
  } finally {
    for (const id of ids) if (session.requestIds.get(id) === endStream) session.requestIds.delete(id);
    session.exchanges -= 1;
    if (session.exchanges === 0 && idleTimeoutMs > 0 && session.ended === undefined) {
      if (session.idleTimer) {
        session.idleTimer.refresh();
      } else {
        session.idleTimer = setTimeout(() => {
          if (session.exchanges > 0 || session.ended !== undefined) return;
          log.info('mcp session idle; ending it', { userId: session.userId, clientId: session.clientId });
          void session.transport.close();
        }, idleTimeoutMs);
        session.idleTimer.unref();
      }
    }
  }
}

/** The request ids (as JSON text) that `notifications/cancelled` messages in a POST body cancel. */
function cancelledIdsOf(body: unknown): string[] {
  const messages = Array.isArray(body) ? body : [body];
  return messages.flatMap((message) => {
    const { method, params } = (message ?? {}) as { method?: unknown; params?: { requestId?: unknown } };
    const id = params?.requestId;
    return method === 'notifications/cancelled' && (typeof id === 'string' || typeof id === 'number') ? [JSON.stringify(id)] : [];
  });
}

/** The ids of the requests (not notifications or responses) in a POST body, as JSON text. */
function requestIdsOf(body: unknown): string[] {
  const messages = Array.isArray(body) ? body : [body];
  return messages.flatMap((message) => {
    const { id, method } = (message ?? {}) as { id?: unknown; method?: unknown };
    return typeof method === 'string' && (typeof id === 'string' || typeof id === 'number') ? [JSON.stringify(id)] : [];
  });
}

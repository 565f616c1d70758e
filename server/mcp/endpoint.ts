import type { Context, Next } from 'koa';
import { classifyInboundRequest, CLIENT_CAPABILITIES_META_KEY, createMcpHandler, isInitializeRequest, Server, type ClientCapabilities } from '@modelcontextprotocol/server';

import type { Logger } from '../log.js';
import { createFastCall, type FastCallOptions } from './aggregate/fast-call.js';
import { createLegacyFastCall } from './aggregate/legacy-fast-call.js';
import { prefixedNaming, untouchedNaming } from './aggregate/naming.js';
import { AGGREGATE_CAPABILITIES, aggregateCapabilities, registerAggregateHandlers, type AggregateHandlerOptions } from './aggregate/handlers.js';
import { forCaller, type CallerUpstreamOptions } from './aggregate/caller-upstreams.js';
import { ListenStreams } from './aggregate/listen-streams.js';
import { openLegacySession, relayableCapabilities, type LegacySession } from './aggregate/legacy-sessions.js';
import { sendWebResponse, toWebRequest } from './aggregate/web-bridge.js';
import { JSON_RPC_ERRORS, readJsonBody, respondWithJsonRpcError } from './json-rpc.js';
import { mcpMethodOf } from '../metrics.js';
import { DEFAULT_TOOL_NAME_SEPARATOR } from './tool-names.js';
import type { McpCaller, McpUpstream } from './types.js';
import { offersTasks, safeErrorText, UpstreamConnections, UpstreamEras } from './upstream-connections.js';

export type { McpCaller, McpUpstream } from './types.js';

/** Options of {@link createMcpEndpoint}. */
export interface McpEndpointOptions {
  /** Between an upstream's name and its tool's name in the aggregated list. Default `__`. */
  separator?: string;
  /**
   * `prefixed` (default): names `<upstream><separator><name>` and `mcp-upstream://` URIs, for any
   * number of upstreams. `untouched`: the one upstream's own names and URIs, for an endpoint that
   * serves a single upstream across protocol eras.
   */
  naming?: 'prefixed' | 'untouched';
  /** How the gateway introduces itself to MCP clients and to upstreams. */
  serverInfo?: { name: string; version: string };
  log: Logger;
  /**
   * Headers to send to an upstream for this caller (later: the user's upstream token). Called for
   * every HTTP request to the upstream. Throwing fails that request: a thrown `McpError` or
   * {@link JsonRpcError} (e.g. a URL elicitation, -32042) reaches a 2025-era MCP client as that
   * JSON-RPC error (an MCP 2026-07-28 client gets an input-required URL elicitation instead);
   * anything else leaves the upstream out of lists and makes a call to it an `isError` result.
   */
  upstreamHeaders?: (caller: McpCaller, upstream: McpUpstream, request?: { method: string; url: string }) => Promise<Record<string, string>> | Record<string, string>;
  /**
   * An upstream answered HTTP 401 to a request sent with `sent` headers (see `upstreamHeaders`);
   * resolving true sends the request once more. `retried` is true when the refused one was the retry.
   */
  upstreamUnauthorized?: (caller: McpCaller, upstream: McpUpstream, sent: Record<string, string>, retried: boolean) => Promise<boolean>;
  /** The upstream answered 403 `insufficient_scope` (step-up); see `UpstreamConnectionsOptions.insufficientScope`. */
  upstreamInsufficientScope?: (caller: McpCaller, upstream: McpUpstream, sent: Record<string, string>, scopes: string[]) => Promise<boolean>;
  /** Largest accepted POST body. Default 4 MiB. */
  maxBodyBytes?: number;
  /** A 2025-era session with no request or stream open for this long is ended. Default 30 minutes; `0` never. */
  sessionIdleTimeoutMs?: number;
  /**
   * 2025-era sessions one user may hold open through one client. A new one beyond it ends that
   * user's least recently used idle session; when none is idle it is refused (429). Default 16.
   */
  maxSessionsPerClient?: number;
  /** Bound on one upstream `tools/call`, reset by progress notifications. Default 60 s. */
  callTimeoutMs?: number;
  /** Bound on one upstream request other than `tools/call` (and on connecting to it); a slower upstream is left out of lists. Default 10 s. */
  listTimeoutMs?: number;
  /**
   * Resolves true once the user completed the URL elicitation `elicitationId` (connected the
   * upstream), false when it expired or `signal` aborted. With it, a client that declared
   * `elicitation.url` gets an `elicitation/create` request instead of a -32042 error, and the call
   * continues once the user finished.
   */
  awaitElicitation?: (elicitationId: string, signal: AbortSignal) => Promise<boolean>;
}

/** The `/mcp` endpoint returned by {@link createMcpEndpoint}. */
export interface McpEndpoint {
  /**
   * Koa middleware serving every request it is given as the MCP endpoint (POST, GET, DELETE).
   * Expects `ctx.state.caller: McpCaller` set by the auth layer in front, and an unread body (or
   * the parsed body in `ctx.state.mcpParsedBody: { value }` when another endpoint read it).
   */
  middleware: (ctx: Context, next: Next) => Promise<void>;
  /** Number of live sessions (for metrics/tests). */
  sessionCount(): number;
  /** Number of open MCP 2026-07-28 `subscriptions/listen` streams in this process (for metrics/tests). */
  listenStreamCount(): number;
  /** Whether `sessionId` is a live 2025-era session of this endpoint (in this process). */
  hasSession(sessionId: string): boolean;
  /**
   * Sends `notifications/elicitation/complete` to this user's sessions (of one client, when given)
   * whose client declared URL elicitation. Returns how many were told.
   */
  elicitationCompleted(userId: string, clientId: string | undefined, elicitationId: string): Promise<number>;
  /** Ends every session and its upstream connections; later requests are refused with 503. */
  close(): Promise<void>;
}

const DEFAULTS = {
  serverInfo: { name: 'consent-gateway', version: '0.1.0' },
  maxBodyBytes: 4 * 1024 * 1024,
  sessionIdleTimeoutMs: 30 * 60 * 1000,
  maxSessionsPerClient: 16,
  callTimeoutMs: 60_000,
  listTimeoutMs: 10_000,
} as const;

/** What the modern leg hands its per-request server factory through `authInfo.extra`. */
interface ModernRequestContext {
  caller: McpCaller;
  capabilities: ClientCapabilities | undefined;
}

/**
 * Creates the gateway's aggregating MCP endpoint: every upstream the caller may use behind one
 * URL, tools and prompts named `<upstream><separator><name>`, resource URIs mapped to
 * `mcp-upstream://<upstream>/<uri>`, task ids `<upstream>.<task id>` (MCP Tasks, SEP-2663), each
 * request forwarded with the caller's own upstream credentials. Serves both protocol eras on the
 * same URL: MCP 2026-07-28 requests (per-request `_meta` envelope) statelessly, each answered by a
 * fresh SDK v2 `Server` so any gateway process can serve any request; a `subscriptions/listen`
 * stream is the one exception by nature, held with its upstream listeners by the process that
 * serves it (see `ListenStreams`); 2025-era traffic (`initialize`, `Mcp-Session-Id`) in sessions
 * bound to the user and client that opened them (MCP 2025-11-25 Basic/Transports §Streamable HTTP).
 */
export function createMcpEndpoint(options: McpEndpointOptions): McpEndpoint {
  const { log } = options;
  const separator = options.separator ?? DEFAULT_TOOL_NAME_SEPARATOR;
  const serverInfo = options.serverInfo ?? DEFAULTS.serverInfo;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULTS.maxBodyBytes;
  const idleTimeoutMs = options.sessionIdleTimeoutMs ?? DEFAULTS.sessionIdleTimeoutMs;
  const maxSessionsPerClient = options.maxSessionsPerClient ?? DEFAULTS.maxSessionsPerClient;
  const listTimeoutMs = options.listTimeoutMs ?? DEFAULTS.listTimeoutMs;
  if (separator.length === 0) throw new TypeError('the tool name separator must not be empty');

  const handlers: AggregateHandlerOptions = {
    log,
    naming: options.naming === 'untouched' ? untouchedNaming : prefixedNaming(separator),
    callTimeoutMs: options.callTimeoutMs ?? DEFAULTS.callTimeoutMs,
    listTimeoutMs,
    ...(options.awaitElicitation ? { awaitElicitation: options.awaitElicitation } : {}),
  };
  const eras = new UpstreamEras();
  const headers = async (caller: McpCaller, upstream: McpUpstream, request?: { method: string; url: string }) => (options.upstreamHeaders ? await options.upstreamHeaders(caller, upstream, request) : {});
  const upstreamOptions = { clientInfo: serverInfo, log, eras, connectTimeoutMs: listTimeoutMs };
  const sessions = new Map<string, LegacySession>();
  let closed = false;
  const callerUpstreams: CallerUpstreamOptions = {
    ...upstreamOptions,
    headers,
    ...(options.upstreamUnauthorized ? { unauthorized: options.upstreamUnauthorized } : {}),
    ...(options.upstreamInsufficientScope ? { insufficientScope: options.upstreamInsufficientScope } : {}),
  };
  const listenStreams = new ListenStreams({ serverInfo, log, naming: handlers.naming, capabilities: AGGREGATE_CAPABILITIES, maxBodyBytes, upstreams: callerUpstreams });
  const modernConnections = (caller: McpCaller, capabilities: ClientCapabilities | undefined) =>
    new UpstreamConnections({ ...forCaller(callerUpstreams, () => caller), capabilities: () => relayableCapabilities(capabilities, { tasks: true }) });

  const fastCallOptions: FastCallOptions = {
    log,
    naming: handlers.naming,
    clientInfo: serverInfo,
    speaksModern: (upstream) => eras.get(upstream.url)?.kind === 'modern',
    headers,
    ...(options.upstreamUnauthorized ? { unauthorized: options.upstreamUnauthorized } : {}),
    timeoutMs: handlers.callTimeoutMs,
  };
  const fastCall = createFastCall(fastCallOptions);
  const legacyFastCall = createLegacyFastCall(fastCallOptions);

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

  function openSession(caller: McpCaller): LegacySession {
    return openLegacySession(caller, {
      serverInfo,
      log,
      handlers,
      maxBodyBytes,
      upstreams: callerUpstreams,
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

  /** When each session last had a request: the least recently used idle one is ended first. */
  const lastUsed = new WeakMap<LegacySession, number>();

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

  async function serveLegacy(ctx: Context, session: LegacySession, caller: McpCaller, request: () => Request, body: unknown): Promise<void> {
    lastUsed.set(session, Date.now());
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
    session.exchanges += 1;
    clearTimeout(session.idleTimer);
    try {
      if (ctx.method === 'POST' && (await legacyFastCall(ctx, session, caller, body))) return;
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
        session.idleTimer = setTimeout(() => {
          log.info('mcp session idle; ending it', { userId: session.userId, clientId: session.clientId });
          void session.transport.close();
        }, idleTimeoutMs);
        session.idleTimer.unref();
      }
    }
  }

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

  async function serveModern(ctx: Context, caller: McpCaller, request: () => Request, body: unknown): Promise<void> {
    const message = (Array.isArray(body) ? undefined : body) as { method?: unknown; params?: { _meta?: Record<string, unknown> } } | null | undefined;
    if (message?.method === 'subscriptions/listen') return serveListen(ctx, caller, request, message as Record<string, unknown>);
    if (message?.method === 'server/discover') await learnEras(caller);
    if (await fastCall(ctx, caller, body)) return;
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
  }

  return {
    async middleware(ctx) {
      const caller = (ctx.state as { caller?: unknown }).caller;
      if (!isCaller(caller)) throw new Error('the /mcp endpoint needs ctx.state.caller from the auth layer in front of it');
      if (closed) return respondWithJsonRpcError(ctx, 503, JSON_RPC_ERRORS.transport, 'Service Unavailable: the server is shutting down');
      if (ctx.method !== 'POST' && ctx.method !== 'GET' && ctx.method !== 'DELETE') {
        ctx.set('Allow', 'GET, POST, DELETE');
        return respondWithJsonRpcError(ctx, 405, JSON_RPC_ERRORS.transport, 'Method not allowed.');
      }

      let body: unknown;
      const handedOver = (ctx.state as { mcpParsedBody?: { value: unknown } }).mcpParsedBody;
      if (ctx.method === 'POST' && handedOver) {
        // Another endpoint read and checked the body already (a single-upstream endpoint bridging eras).
        body = handedOver.value;
      } else if (ctx.method === 'POST') {
        if (!ctx.is('application/json')) {
          return respondWithJsonRpcError(ctx, 415, JSON_RPC_ERRORS.transport, 'Unsupported Media Type: Content-Type must be application/json');
        }
        const read = await readJsonBody(ctx.req, maxBodyBytes);
        if (!read.ok) {
          if (read.status === 413) ctx.set('Connection', 'close');
          return respondWithJsonRpcError(ctx, read.status, read.code, read.message);
        }
        body = read.value;
      }
      (ctx.state as { mcpMethod?: string | undefined }).mcpMethod = mcpMethodOf(body);

      // The web-standard request the SDK's entry points take is built only when one of them serves.
      let built: Request | undefined;
      const request = () => (built ??= toWebRequest(ctx, body).request);
      if (ctx.method === 'POST' && !isLegacy(ctx, body)) return serveModern(ctx, caller, request, body);

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
          await serveLegacy(ctx, session, caller, request, body);
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
      await serveLegacy(ctx, session, caller, request, body);
    },

    sessionCount: () => sessions.size,
    hasSession: (sessionId) => sessions.has(sessionId),
    listenStreamCount: () => listenStreams.streamCount,

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
      closed = true;
      await Promise.all(
        [...sessions.values()].map(async (session) => {
          await session.server.close();
          await session.end();
        }),
      );
      await modern.close();
      await listenStreams.closeAll();
    },
  };
}

/** A request failed before or while its response was written: answer 500 if nothing was sent yet. */
function respondAfterFailure(ctx: Context): void {
  ctx.respond = false;
  if (!ctx.res.headersSent) {
    ctx.res.writeHead(500, { 'Content-Type': 'application/json' });
    ctx.res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: JSON_RPC_ERRORS.internalError, message: 'Internal error' }, id: null }));
  } else {
    ctx.res.end();
  }
}

/**
 * Whether a POST with this parsed body is 2025-era traffic: the SDK's own classification
 * (`isLegacyRequest`), read from the Node request's headers without building a web `Request`.
 */
function isLegacy(ctx: Context, body: unknown): boolean {
  const header = (name: string) => {
    const value = ctx.req.headers[name];
    return Array.isArray(value) ? value.join(', ') : value;
  };
  const protocolVersionHeader = header('mcp-protocol-version');
  const mcpMethodHeader = header('mcp-method');
  const mcpNameHeader = header('mcp-name');
  return (
    classifyInboundRequest({
      httpMethod: 'POST',
      body,
      ...(protocolVersionHeader !== undefined ? { protocolVersionHeader } : {}),
      ...(mcpMethodHeader !== undefined ? { mcpMethodHeader } : {}),
      ...(mcpNameHeader !== undefined ? { mcpNameHeader } : {}),
    }).kind === 'legacy'
  );
}

function isCaller(value: unknown): value is McpCaller {
  const caller = value as Partial<McpCaller> | null | undefined;
  return typeof caller?.userId === 'string' && typeof caller.clientId === 'string' && Array.isArray(caller.upstreams);
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

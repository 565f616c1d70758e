import { randomUUID } from 'node:crypto';

import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import {
  CallToolRequestSchema,
  CallToolResultSchema,
  isInitializeRequest,
  ListToolsRequestSchema,
  McpError,
  ToolSchema,
  type CallToolRequest,
  type CallToolResult,
  type ListToolsResult,
  type ServerNotification,
  type ServerRequest,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import type { Context, Next } from 'koa';
import * as z from 'zod';

import type { Logger } from '../log.js';
import { JSON_RPC_ERRORS, JsonRpcError, readJsonBody, respondWithJsonRpcError } from './json-rpc.js';
import { DEFAULT_TOOL_NAME_SEPARATOR, prefixToolName, resolveToolName } from './tool-names.js';
import type { McpCaller, McpUpstream } from './types.js';
import {
  describeUpstreamFailure,
  isJsonRpcErrorFromUpstream,
  relayJsonRpcError,
  safeErrorText,
  UpstreamConnections,
  UpstreamCredentialsError,
} from './upstream-connections.js';

export type { McpCaller, McpUpstream } from './types.js';

/** Options of {@link createMcpEndpoint}. */
export interface McpEndpointOptions {
  /** Between an upstream's name and its tool's name in the aggregated list. Default `__`. */
  separator?: string;
  /** How the gateway introduces itself to MCP clients and to upstreams. */
  serverInfo?: { name: string; version: string };
  log: Logger;
  /**
   * Headers to send to an upstream for this caller (later: the user's upstream token). Called for
   * every HTTP request to the upstream. Throwing fails that request: a thrown `McpError` or
   * {@link JsonRpcError} (e.g. a URL elicitation, -32042) reaches the MCP client as that JSON-RPC
   * error on `tools/call`; anything else becomes an `isError` result.
   */
  upstreamHeaders?: (caller: McpCaller, upstream: McpUpstream) => Promise<Record<string, string>> | Record<string, string>;
  /**
   * An upstream answered HTTP 401 to a request sent with `sent` headers (see `upstreamHeaders`);
   * resolving true sends the request once more. `retried` is true when the refused one was the retry.
   */
  upstreamUnauthorized?: (caller: McpCaller, upstream: McpUpstream, sent: Record<string, string>, retried: boolean) => Promise<boolean>;
  /** Largest accepted POST body. Default 4 MiB. */
  maxBodyBytes?: number;
  /** A session with no request in flight for this long is ended. Default 30 minutes; `0` never. */
  sessionIdleTimeoutMs?: number;
  /** Bound on one upstream `tools/call`, reset by progress notifications. Default 60 s. */
  callTimeoutMs?: number;
  /** Bound on listing one upstream's tools (and on connecting to it); a slower upstream is left out. Default 10 s. */
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
   * Expects `ctx.state.caller: McpCaller` set by the auth layer in front, and an unread body.
   */
  middleware: (ctx: Context, next: Next) => Promise<void>;
  /** Number of live sessions (for metrics/tests). */
  sessionCount(): number;
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
  callTimeoutMs: 60_000,
  listTimeoutMs: 10_000,
} as const;

/** No upstream is paged through further than this; a cursor loop must not hang tools/list. */
const MAX_LIST_PAGES = 20;

/** Keeps each tool object as the upstream sent it; {@link ToolSchema} only vets it. */
const RawListToolsResultSchema = z.looseObject({
  tools: z.array(z.looseObject({ name: z.string() })),
  nextCursor: z.string().optional(),
});

interface Session {
  id: string | undefined;
  readonly userId: string;
  readonly clientId: string;
  caller: McpCaller;
  upstreamKey: string;
  readonly server: Server;
  readonly transport: StreamableHTTPServerTransport;
  readonly upstreams: UpstreamConnections;
  inFlight: number;
  idleTimer: NodeJS.Timeout | undefined;
  ended: Promise<void> | undefined;
}

type HandlerExtra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/**
 * Creates the gateway's MCP endpoint (MCP spec 2025-06-18, Basic/Transports §Streamable HTTP):
 * stateful sessions, each bound to the user and client that opened it; the tools of every
 * upstream the caller may use, named `<upstream><separator><tool>`; `tools/call` forwarded to
 * the owning upstream through one SDK client per session and upstream.
 */
export function createMcpEndpoint(options: McpEndpointOptions): McpEndpoint {
  const { log } = options;
  const separator = options.separator ?? DEFAULT_TOOL_NAME_SEPARATOR;
  const serverInfo = options.serverInfo ?? DEFAULTS.serverInfo;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULTS.maxBodyBytes;
  const idleTimeoutMs = options.sessionIdleTimeoutMs ?? DEFAULTS.sessionIdleTimeoutMs;
  const callTimeoutMs = options.callTimeoutMs ?? DEFAULTS.callTimeoutMs;
  const listTimeoutMs = options.listTimeoutMs ?? DEFAULTS.listTimeoutMs;
  if (separator.length === 0) throw new TypeError('the tool name separator must not be empty');

  const sessions = new Map<string, Session>();
  let closed = false;

  function openSession(caller: McpCaller): Session {
    const server = new Server(serverInfo, { capabilities: { tools: { listChanged: true } } });
    const session: Session = {
      id: undefined,
      userId: caller.userId,
      clientId: caller.clientId,
      caller,
      upstreamKey: upstreamKey(caller.upstreams),
      server,
      transport: new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          session.id = id;
          sessions.set(id, session);
          log.info('mcp session started', { userId: session.userId, clientId: session.clientId, sessions: sessions.size });
        },
        // Awaited before the DELETE is answered, so the upstream sessions are gone by then.
        onsessionclosed: () => endSession(session),
      }),
      upstreams: new UpstreamConnections({
        clientInfo: serverInfo,
        log,
        headers: async (upstream) => (options.upstreamHeaders ? await options.upstreamHeaders(session.caller, upstream) : {}),
        ...(options.upstreamUnauthorized
          ? { unauthorized: (upstream: McpUpstream, sent: Record<string, string>, retried: boolean) => options.upstreamUnauthorized!(session.caller, upstream, sent, retried) }
          : {}),
        onToolListChanged: () => notifyToolListChanged(session),
        connectTimeoutMs: listTimeoutMs,
      }),
      inFlight: 0,
      idleTimer: undefined,
      ended: undefined,
    };
    server.onerror = (error) => log.debug('mcp session error', { userId: session.userId, error: safeErrorText(error) });
    server.onclose = () => void endSession(session);
    server.setRequestHandler(ListToolsRequestSchema, () => listTools(session));
    server.setRequestHandler(CallToolRequestSchema, (request, extra) => callTool(session, request.params, extra));
    return session;
  }

  function endSession(session: Session): Promise<void> {
    session.ended ??= (async () => {
      if (session.id !== undefined && sessions.get(session.id) === session) sessions.delete(session.id);
      clearTimeout(session.idleTimer);
      await session.upstreams.closeAll();
      if (session.id !== undefined) log.debug('mcp session ended', { userId: session.userId, clientId: session.clientId, sessions: sessions.size });
    })();
    return session.ended;
  }

  function notifyToolListChanged(session: Session): void {
    session.server.sendToolListChanged().catch((error: unknown) => log.debug('could not announce a tool list change', { error: safeErrorText(error) }));
  }

  /** Follows the caller's current upstream list: a change closes dropped connections and tells the client. */
  function refreshCaller(session: Session, caller: McpCaller): void {
    session.caller = caller;
    const key = upstreamKey(caller.upstreams);
    if (key === session.upstreamKey) return;
    session.upstreamKey = key;
    void session.upstreams.retain(caller.upstreams);
    notifyToolListChanged(session);
  }

  async function listTools(session: Session): Promise<ListToolsResult> {
    const { caller } = session;
    const lists = await Promise.all(
      caller.upstreams.map(async (upstream) => {
        try {
          return await session.upstreams.use(upstream, (client) => listUpstreamTools(client, upstream, caller.upstreams));
        } catch (error) {
          log.warn('upstream left out of tools/list', {
            upstream: upstream.name,
            userId: caller.userId,
            reason: describeUpstreamFailure(error),
            error: safeErrorText(error),
          });
          return [];
        }
      }),
    );
    return { tools: lists.flat() };
  }

  async function listUpstreamTools(client: Client, upstream: McpUpstream, all: readonly McpUpstream[]): Promise<Tool[]> {
    const tools: Tool[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES; page += 1) {
      const result = await client.request({ method: 'tools/list', params: cursor === undefined ? {} : { cursor } }, RawListToolsResultSchema, { timeout: listTimeoutMs });
      for (const tool of result.tools) {
        const name = prefixToolName(upstream.name, tool.name, separator);
        if (!ToolSchema.safeParse(tool).success) {
          log.warn('upstream tool left out: not a valid MCP tool', { upstream: upstream.name, tool: tool.name });
        } else if (resolveToolName(name, all, separator)?.upstream.name !== upstream.name) {
          log.warn('upstream tool left out: its name would route to another upstream', { upstream: upstream.name, tool: tool.name });
        } else {
          tools.push({ ...(tool as Tool), name });
        }
      }
      cursor = result.nextCursor;
      if (cursor === undefined) break;
    }
    return tools;
  }

  /** The URL elicitation a credentials failure asks for, if that is what it is. */
  function urlElicitationOf(error: unknown): { elicitationId: string; url: string; message: string } | undefined {
    if (!(error instanceof UpstreamCredentialsError) || !(error.cause instanceof JsonRpcError) || error.cause.code !== -32042) return undefined;
    const first = (error.cause.data as { elicitations?: { mode?: string; elicitationId?: string; url?: string; message?: string }[] } | undefined)?.elicitations?.[0];
    if (first?.mode !== 'url' || !first.elicitationId || !first.url) return undefined;
    return { elicitationId: first.elicitationId, url: first.url, message: first.message ?? 'Connect your account to continue.' };
  }

  async function callTool(session: Session, params: CallToolRequest['params'], extra: HandlerExtra, elicited = false): Promise<CallToolResult> {
    const { name, task, _meta, ...rest } = params;
    if (task !== undefined) throw new JsonRpcError(JSON_RPC_ERRORS.invalidParams, 'Task-augmented tool calls are not supported by this gateway');
    const { caller } = session;
    const target = resolveToolName(name, caller.upstreams, separator);
    if (!target) {
      throw new JsonRpcError(
        JSON_RPC_ERRORS.invalidParams,
        `Unknown tool: ${name}. Tool names have the form <upstream>${separator}<tool>; tools/list shows the tools available to you.`,
      );
    }
    const { upstream, tool } = target;
    const { progressToken, ...meta } = _meta ?? {};
    const forwarded = { ...rest, name: tool, ...(Object.keys(meta).length > 0 ? { _meta: meta } : {}) };
    const started = performance.now();
    try {
      const result = await session.upstreams.use(upstream, (client) =>
        client.request({ method: 'tools/call', params: forwarded }, CallToolResultSchema, {
          signal: extra.signal,
          timeout: callTimeoutMs,
          resetTimeoutOnProgress: true,
          ...(progressToken !== undefined
            ? {
                onprogress: (progress) => {
                  extra.sendNotification({ method: 'notifications/progress', params: { ...progress, progressToken } }).catch(() => undefined);
                },
              }
            : {}),
        }),
      );
      log.debug('tool call forwarded', { userId: caller.userId, upstream: upstream.name, tool, ms: Math.round(performance.now() - started) });
      return result;
    } catch (error) {
      if (extra.signal.aborted) throw error;
      if (isJsonRpcErrorFromUpstream(error)) throw relayJsonRpcError(error);
      const elicitation = urlElicitationOf(error);
      // A client that can show a URL elicitation gets one, and the call waits for the user.
      if (elicitation && !elicited && options.awaitElicitation && session.server.getClientCapabilities()?.elicitation?.url) {
        const answer = await session.server.elicitInput({ mode: 'url', ...elicitation }, { signal: extra.signal, timeout: 10 * 60_000 });
        if (answer.action !== 'accept') {
          return { isError: true, content: [{ type: 'text', text: `${upstream.displayName} is not connected: the user did not continue (${answer.action}).` }] };
        }
        if (await options.awaitElicitation(elicitation.elicitationId, extra.signal)) return callTool(session, params, extra, true);
        return { isError: true, content: [{ type: 'text', text: `${upstream.displayName} was not connected in time.` }] };
      }
      if (error instanceof UpstreamCredentialsError) {
        if (error.cause instanceof JsonRpcError) throw error.cause;
        if (error.cause instanceof McpError) throw relayJsonRpcError(error.cause);
      }
      const reason = describeUpstreamFailure(error);
      log.warn('upstream tool call failed', { userId: caller.userId, upstream: upstream.name, tool, reason, error: safeErrorText(error) });
      return { isError: true, content: [{ type: 'text', text: `Upstream "${upstream.displayName}" (${upstream.name}) is unavailable: ${reason}.` }] };
    }
  }

  async function serve(ctx: Context, session: Session, body: unknown): Promise<void> {
    session.inFlight += 1;
    clearTimeout(session.idleTimer);
    ctx.respond = false;
    try {
      await session.transport.handleRequest(ctx.req, ctx.res, body);
    } catch (error) {
      log.error('mcp request failed', { method: ctx.method, userId: session.userId, error: safeErrorText(error) });
      if (!ctx.res.headersSent) {
        ctx.res.writeHead(500, { 'Content-Type': 'application/json' });
        ctx.res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: JSON_RPC_ERRORS.internalError, message: 'Internal error' }, id: null }));
      } else {
        ctx.res.end();
      }
    } finally {
      session.inFlight -= 1;
      if (session.inFlight === 0 && idleTimeoutMs > 0 && session.ended === undefined) {
        session.idleTimer = setTimeout(() => {
          log.info('mcp session idle; ending it', { userId: session.userId, clientId: session.clientId });
          void session.transport.close();
        }, idleTimeoutMs);
        session.idleTimer.unref();
      }
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
      if (ctx.method === 'POST') {
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

      const sessionId = ctx.get('mcp-session-id');
      if (sessionId === '') {
        const initializing = Array.isArray(body) ? body.some((message) => isInitializeRequest(message)) : isInitializeRequest(body);
        if (!initializing) return respondWithJsonRpcError(ctx, 400, JSON_RPC_ERRORS.transport, 'Bad Request: Mcp-Session-Id header is required');
        const session = openSession(caller);
        await session.server.connect(session.transport);
        try {
          await serve(ctx, session, body);
        } finally {
          // The transport refused the initialize (bad headers, batch): nothing else holds this session.
          if (session.id === undefined) await session.server.close();
        }
        return;
      }

      const session = sessions.get(sessionId);
      if (!session || session.userId !== caller.userId || session.clientId !== caller.clientId) {
        if (session) log.warn('mcp session presented by another identity; refused', { userId: caller.userId, clientId: caller.clientId });
        return respondWithJsonRpcError(ctx, 404, JSON_RPC_ERRORS.sessionNotFound, 'Session not found');
      }
      refreshCaller(session, caller);
      await serve(ctx, session, body);
    },

    sessionCount: () => sessions.size,
    async elicitationCompleted(userId, clientId, elicitationId) {
      let told = 0;
      for (const session of sessions.values()) {
        if (session.userId !== userId || (clientId !== undefined && session.clientId !== clientId)) continue;
        if (!session.server.getClientCapabilities()?.elicitation?.url) continue;
        await session.server.createElicitationCompletionNotifier(elicitationId)().then(() => (told += 1)).catch(() => undefined);
      }
      return told;
    },

    async close() {
      closed = true;
      const live = [...sessions.values()];
      await Promise.all(
        live.map(async (session) => {
          await session.server.close();
          await endSession(session);
        }),
      );
    },
  };
}

function upstreamKey(upstreams: readonly McpUpstream[]): string {
  return JSON.stringify(upstreams.map((upstream) => [upstream.name, upstream.url]).sort());
}

function isCaller(value: unknown): value is McpCaller {
  const caller = value as Partial<McpCaller> | null | undefined;
  return typeof caller?.userId === 'string' && typeof caller.clientId === 'string' && Array.isArray(caller.upstreams);
}

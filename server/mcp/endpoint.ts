import type { Context, Next } from 'koa';

import type { Logger } from '../log.js';
import type { UpstreamChallenge } from './bearer-challenge.js';
import type { CallerUpstreamOptions } from './aggregate/caller-upstreams.js';
import { createFastCall, type FastCallOptions } from './aggregate/fast-call.js';
import type { AggregateHandlerOptions } from './aggregate/handlers.js';
import { createLegacyFastCall } from './aggregate/legacy-fast-call.js';
import { createLegacyServing } from './aggregate/legacy-serving.js';
import { createModernServing } from './aggregate/modern-serving.js';
import { prefixedNaming, untouchedNaming } from './aggregate/naming.js';
import { isCaller, isLegacy } from './aggregate/request-guards.js';
import { toWebRequest } from './aggregate/web-bridge.js';
import { mcpMethodOf } from '../metrics.js';
import { guardToolCalls, readPostBody, refusedBeforeReading } from './request-guards.js';
import { DEFAULT_TOOL_NAME_SEPARATOR } from './tool-names.js';
import type { McpCaller, McpUpstream } from './types.js';
import { UpstreamEras } from './upstream-connections.js';

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
  /**
   * Whether a 2025 session's calls may go to an upstream in the 2025 era when it takes them without
   * a session (legacy-legs.ts). Default true; false for an endpoint that serves 2025 clients only
   * in front of upstreams found not to speak 2025, which need not be asked.
   */
  legacyLegs?: boolean;
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
  upstreamUnauthorized?: (caller: McpCaller, upstream: McpUpstream, sent: Record<string, string>, retried: boolean, challenge?: UpstreamChallenge) => Promise<boolean>;
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
  let closed = false;
  const callerUpstreams: CallerUpstreamOptions = {
    clientInfo: serverInfo,
    log,
    eras,
    connectTimeoutMs: listTimeoutMs,
    headers,
    ...(options.upstreamUnauthorized ? { unauthorized: options.upstreamUnauthorized } : {}),
    ...(options.upstreamInsufficientScope ? { insufficientScope: options.upstreamInsufficientScope } : {}),
  };
  const fastCallOptions: FastCallOptions = {
    log,
    naming: handlers.naming,
    clientInfo: serverInfo,
    eraOf: (upstream) => eras.get(upstream.url)?.kind,
    legacyLeg: (upstream) => eras.legacyLeg(upstream.url),
    headers,
    ...(options.upstreamUnauthorized ? { unauthorized: options.upstreamUnauthorized } : {}),
    timeoutMs: handlers.callTimeoutMs,
  };
  const legacy = createLegacyServing({
    serverInfo,
    log,
    handlers,
    maxBodyBytes,
    upstreams: callerUpstreams,
    idleTimeoutMs: options.sessionIdleTimeoutMs ?? DEFAULTS.sessionIdleTimeoutMs,
    maxSessionsPerClient: options.maxSessionsPerClient ?? DEFAULTS.maxSessionsPerClient,
    fastCall: createLegacyFastCall(fastCallOptions, { legs: options.legacyLegs ?? true }),
  });
  const modern = createModernServing({ serverInfo, log, handlers, maxBodyBytes, upstreams: callerUpstreams, eras, fastCall: createFastCall(fastCallOptions) });

  return {
    async middleware(ctx) {
      const caller = (ctx.state as { caller?: unknown }).caller;
      if (!isCaller(caller)) throw new Error('the /mcp endpoint needs ctx.state.caller from the auth layer in front of it');
      if (refusedBeforeReading(ctx, closed)) return;

      let body: unknown;
      const handedOver = (ctx.state as { mcpParsedBody?: { value: unknown } }).mcpParsedBody;
      if (ctx.method === 'POST' && handedOver) {
        // Another endpoint read and checked the body already (a single-upstream endpoint bridging eras).
        body = handedOver.value;
      } else if (ctx.method === 'POST') {
        const read = await readPostBody(ctx, maxBodyBytes);
        if (!read) return;
        body = read.value;
      }
      (ctx.state as { mcpMethod?: string | undefined }).mcpMethod = mcpMethodOf(body);
      // A tool the token lacks a tool scope for is refused (403, step-up) before it is served.
      guardToolCalls(ctx, body);

      // The web-standard request the SDK's entry points take is built only when one of them serves.
      let built: Request | undefined;
      const request = () => (built ??= toWebRequest(ctx, body).request);
      if (ctx.method === 'POST' && !isLegacy(ctx, body)) return modern.serve(ctx, caller, request, body);
      return legacy.serve(ctx, caller, request, body);
    },

    sessionCount: () => legacy.sessionCount(),
    hasSession: (sessionId) => legacy.hasSession(sessionId),
    listenStreamCount: () => modern.listenStreamCount(),
    elicitationCompleted: (userId, clientId, elicitationId) => legacy.elicitationCompleted(userId, clientId, elicitationId),

    async close() {
      closed = true;
      await legacy.close();
      await modern.close();
    },
  };
}

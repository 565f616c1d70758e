import { createHmac, timingSafeEqual } from 'node:crypto';
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';

import type { Context } from 'koa';

import type { Logger } from '../log.js';
import { HEADER_MISMATCH, headerMismatch, isModernVersion, MODERN_PROTOCOL_VERSION, requestProtocolVersion, type JsonRpcMessageShape } from './http-headers.js';
import { JSON_RPC_ERRORS, JsonRpcError, readJsonBody, respondWithJsonRpcError } from './json-rpc.js';
import type { McpCaller, McpUpstream } from './types.js';
import { mcpMethodOf } from '../metrics.js';
import { lowerCased, sendUpstreamRequest } from './upstream-request.js';
import { insufficientScopeOf } from './bearer-challenge.js';

/** Options of {@link createPassthroughEndpoint}. */
export interface PassthroughOptions {
  log: Logger;
  /** The caller's credentials at the upstream; throwing a {@link JsonRpcError} (a URL elicitation, -32042) answers with it. */
  upstreamHeaders(caller: McpCaller, upstream: McpUpstream, request?: { method: string; url: string }): Promise<Record<string, string>>;
  /** The upstream answered 401 to a request sent with `sent`; resolving true sends it once more. */
  upstreamUnauthorized?(caller: McpCaller, upstream: McpUpstream, sent: Record<string, string>, retried: boolean): Promise<boolean>;
  /**
   * The upstream answered 403 `insufficient_scope` naming `scopes` (step-up); resolving true sends
   * the request once more, throwing a {@link JsonRpcError} (a URL elicitation) answers with it.
   */
  upstreamInsufficientScope?(caller: McpCaller, upstream: McpUpstream, sent: Record<string, string>, scopes: string[]): Promise<boolean>;
  /**
   * Key the HMACs that bind a session id (and the gateway's own request state) to its user, client
   * and upstream: the first signs, every one verifies, so a key rotation ends no session.
   */
  sessionKeys: readonly Buffer[];
  /** Largest accepted POST body. */
  maxBodyBytes: number;
  /** Bound on connecting to the upstream and on waiting for its response headers. Default 120 s. */
  responseTimeoutMs?: number;
  /**
   * Serves requests of the protocol era the upstream does not speak (a 2026-07-28 client in front
   * of a 2025-only server, or the reverse), with the upstream's names untouched: an MCP endpoint
   * that speaks both eras on one side and the upstream's era on the other.
   */
  bridge?: { middleware(ctx: Context, next: () => Promise<void>): Promise<void>; hasSession(sessionId: string): boolean };
  /** How long a learnt upstream era is trusted before it is learnt again. Default 1 hour. */
  eraTtlMs?: number;
}

/** The single-upstream endpoint returned by {@link createPassthroughEndpoint}. */
export interface PassthroughEndpoint {
  /** Serves `/mcp/<upstream>` for `ctx.state.caller` (whose `upstreams` holds exactly that upstream). */
  middleware(ctx: Context, next: () => Promise<void>): Promise<void>;
  /** Requests being forwarded right now (open streams included). */
  inFlight(): number;
  /** Ends every forwarded request and refuses new ones with 503. */
  close(): void;
}

/** Request headers the upstream sees from the client; everything else (cookies, the gateway token) stays here. */
const forwardedRequestHeaders = ['accept', 'content-type', 'mcp-protocol-version', 'mcp-method', 'mcp-name', 'last-event-id'] as const;
/** Response headers the client sees from the upstream; `WWW-Authenticate` of the upstream's AS is never shown. */
const forwardedResponseHeaders = ['content-type', 'cache-control', 'mcp-protocol-version', 'retry-after'] as const;


/** Methods whose 2026-07-28 results may ask the client for input (SEP-2322). */
const inputCapableMethods = new Set(['tools/call', 'prompts/get', 'resources/read']);

/**
 * Creates the gateway's single-upstream MCP endpoint, `/mcp/<upstream>`: every message of either
 * protocol era is forwarded to the one upstream as it came (names, URIs, schemas, request state
 * untouched), with the user's own upstream credentials instead of the gateway token (no token
 * passthrough). The upstream's answer streams back as it comes, JSON or SSE.
 *
 * Nothing is kept per session here: a 2025 session id is the upstream's, with an HMAC that binds
 * it to the user, client and upstream, so any gateway process can forward any request and a
 * session id presented by another identity is refused.
 */
export function createPassthroughEndpoint(options: PassthroughOptions): PassthroughEndpoint {
  const { log } = options;
  const responseTimeoutMs = options.responseTimeoutMs ?? 120_000;
  const live = new Set<ClientRequest>();
  let closed = false;
  const eraTtlMs = options.eraTtlMs ?? 60 * 60_000;
  /** What each upstream URL was found to speak; learnt from its answers, once. */
  const eras = new Map<string, { modern?: boolean; legacy?: boolean; until: number }>();
  const eraOf = (url: string) => {
    const known = eras.get(url);
    if (known && known.until > Date.now()) return known;
    eras.delete(url);
    return undefined;
  };
  const learn = (url: string, era: 'modern' | 'legacy', speaks: boolean) => {
    const known = eraOf(url) ?? { until: Date.now() + eraTtlMs };
    if (known[era] === speaks) return;
    known[era] = speaks;
    eras.set(url, known);
    log.info('upstream protocol era learnt', { url: safeReason(url), era, speaks });
  };

  if (options.sessionKeys.length === 0) throw new TypeError('the passthrough endpoint needs at least one session key');
  const macWith = (key: Buffer, text: string) => createHmac('sha256', key).update(text).digest().subarray(0, 18).toString('base64url');
  /** The MAC of `text` under the signing key. */
  const sign = (text: string) => macWith(options.sessionKeys[0]!, text);
  /** Whether `given` is the MAC of `text` under any key of the ring. */
  const verify = (text: string, given: string) =>
    options.sessionKeys.some((key) => {
      const expected = Buffer.from(macWith(key, text));
      const offered = Buffer.from(given);
      return offered.length === expected.length && timingSafeEqual(offered, expected);
    });
  const sessionText = (caller: McpCaller, upstream: string, sessionId: string) => `${caller.userId}\n${caller.clientId}\n${upstream}\n${sessionId}`;
  const wrapSession = (caller: McpCaller, upstream: string, sessionId: string) => `${sessionId}.${sign(sessionText(caller, upstream, sessionId))}`;
  function unwrapSession(caller: McpCaller, upstream: string, wrapped: string): string | undefined {
    const dot = wrapped.lastIndexOf('.');
    if (dot <= 0) return undefined;
    const sessionId = wrapped.slice(0, dot);
    return verify(sessionText(caller, upstream, sessionId), wrapped.slice(dot + 1)) ? sessionId : undefined;
  }

  const stateText = (caller: McpCaller, upstream: string, value: string) => `state\n${caller.userId}\n${caller.clientId}\n${upstream}\n${value}`;
  const signState = (caller: McpCaller, upstream: string, elicitationId: string) => `${stateMarker}${elicitationId}.${sign(stateText(caller, upstream, elicitationId))}`;
  function verifyState(caller: McpCaller, upstream: string, state: string): boolean {
    const rest = state.slice(stateMarker.length);
    const dot = rest.lastIndexOf('.');
    if (dot <= 0) return false;
    return verify(stateText(caller, upstream, rest.slice(0, dot)), rest.slice(dot + 1));
  }

  /** Asks the upstream `server/discover` (MCP 2026-07-28): true when it answers with a result. */
  async function speaksModern(ctx: Context, caller: McpCaller, upstream: McpUpstream): Promise<boolean> {
    const probe = {
      jsonrpc: '2.0',
      id: 'consent-gateway-era-probe',
      method: 'server/discover',
      params: { _meta: { 'io.modelcontextprotocol/protocolVersion': MODERN_PROTOCOL_VERSION, 'io.modelcontextprotocol/clientInfo': { name: 'consent-gateway', version: '0.1.0' }, 'io.modelcontextprotocol/clientCapabilities': {} } },
    };
    const credentials = await options.upstreamHeaders(caller, upstream);
    const answer = await send(
      ctx,
      upstream,
      {
        'user-agent': 'consent-gateway',
        accept: 'application/json, text/event-stream',
        'content-type': 'application/json',
        'mcp-protocol-version': MODERN_PROTOCOL_VERSION,
        'mcp-method': 'server/discover',
        ...lowerCased(credentials),
      },
      Buffer.from(JSON.stringify(probe)),
      'POST',
    );
    let text = '';
    for await (const chunk of answer) {
      text += String(chunk);
      if (text.length > 256 * 1024) break;
    }
    answer.destroy();
    return answer.statusCode === 200 && text.includes('"result"');
  }

  /** Sends one request to the upstream; resolves with its response (headers read, body not). */
  function send(ctx: Context, upstream: McpUpstream, headers: OutgoingHttpHeaders, body: Buffer | undefined, method = ctx.method): Promise<IncomingMessage> {
    return sendUpstreamRequest(ctx, upstream, { method, headers, body, timeoutMs: responseTimeoutMs, live });
  }

  return {
    inFlight: () => live.size,
    close() {
      closed = true;
      for (const request of live) request.destroy();
    },

    async middleware(ctx, next) {
      const caller = (ctx.state as { caller?: McpCaller }).caller;
      const upstream = caller?.upstreams.length === 1 ? caller.upstreams[0] : undefined;
      if (!caller || !upstream) throw new Error('the /mcp/<upstream> endpoint needs ctx.state.caller with exactly one upstream');
      if (closed) return respondWithJsonRpcError(ctx, 503, JSON_RPC_ERRORS.transport, 'Service Unavailable: the server is shutting down');
      if (ctx.method !== 'POST' && ctx.method !== 'GET' && ctx.method !== 'DELETE') {
        ctx.set('Allow', 'GET, POST, DELETE');
        return respondWithJsonRpcError(ctx, 405, JSON_RPC_ERRORS.transport, 'Method not allowed.');
      }

      let body: Buffer | undefined;
      let parsed: unknown;
      let message: JsonRpcMessageShape | undefined;
      let requestId: unknown = null;
      if (ctx.method === 'POST') {
        if (!ctx.is('application/json')) return respondWithJsonRpcError(ctx, 415, JSON_RPC_ERRORS.transport, 'Unsupported Media Type: Content-Type must be application/json');
        const read = await readJsonBody(ctx.req, options.maxBodyBytes);
        if (!read.ok) {
          if (read.status === 413) ctx.set('Connection', 'close');
          return respondWithJsonRpcError(ctx, read.status, read.code, read.message);
        }
        body = read.raw;
        parsed = read.value;
        (ctx.state as { mcpMethod?: string | undefined }).mcpMethod = mcpMethodOf(parsed);
        if (read.value !== null && typeof read.value === 'object' && !Array.isArray(read.value)) {
          message = read.value as JsonRpcMessageShape;
          if (typeof message.id === 'string' || typeof message.id === 'number') requestId = message.id;
        }
        const version = requestProtocolVersion(message, ctx.get('mcp-protocol-version'));
        if (message && isModernVersion(version)) {
          const mismatch = headerMismatch(message, { method: ctx.get('mcp-method'), name: ctx.get('mcp-name'), version: ctx.get('mcp-protocol-version') });
          if (mismatch) {
            ctx.status = 400;
            ctx.body = { jsonrpc: '2.0', error: { code: HEADER_MISMATCH, message: `Header mismatch: ${mismatch}` }, id: requestId };
            return;
          }
        }
      }

      const requestEra = isModernVersion(requestProtocolVersion(message, ctx.get('mcp-protocol-version'))) ? 'modern' : 'legacy';
      const initializing = message?.method === 'initialize';
      const bridge = options.bridge;
      const toBridge = () => {
        if (ctx.method === 'POST') (ctx.state as { mcpParsedBody?: { value: unknown } }).mcpParsedBody = { value: parsed };
        return bridge!.middleware(ctx, next);
      };
      if (bridge) {
        const sessionHeader = ctx.get('mcp-session-id');
        const known = eraOf(upstream.url);
        if (sessionHeader !== '' && bridge.hasSession(sessionHeader)) return toBridge();
        if (ctx.method === 'POST' && requestEra === 'modern' && known?.modern === false) return toBridge();
        if (initializing && known?.legacy === false) return toBridge();
      }

      // The client answers the gateway's own input request (a connect link): it is not the upstream's to see.
      const answered = message ? gatewayRequestState(message) : undefined;
      if (message && answered !== undefined) {
        if (!verifyState(caller, upstream.name, answered)) {
          ctx.status = 200;
          ctx.body = { jsonrpc: '2.0', error: { code: JSON_RPC_ERRORS.invalidParams, message: 'Invalid params: requestState was altered or belongs to another user' }, id: requestId };
          return;
        }
        const { requestState: _state, inputResponses: _responses, ...params } = message.params ?? {};
        message = { ...message, params };
        body = Buffer.from(JSON.stringify(message));
      }

      const headers: Record<string, string> = { 'user-agent': 'consent-gateway' };
      for (const name of forwardedRequestHeaders) {
        const value = ctx.get(name);
        if (value !== '') headers[name] = value;
      }
      for (const [name, value] of Object.entries(ctx.req.headers)) {
        // SEP-2243 custom headers mirror tool arguments; the upstream checks them against the body.
        if (name.startsWith('mcp-param-') && typeof value === 'string') headers[name] = value;
      }
      const wrappedSession = ctx.get('mcp-session-id');
      if (wrappedSession !== '') {
        const sessionId = unwrapSession(caller, upstream.name, wrappedSession);
        if (sessionId === undefined) {
          if (wrappedSession.includes('.')) log.warn('mcp session id of another identity or upstream refused', { userId: caller.userId, clientId: caller.clientId, upstream: upstream.name });
          ctx.status = 404;
          ctx.body = { jsonrpc: '2.0', error: { code: JSON_RPC_ERRORS.sessionNotFound, message: 'Session not found' }, id: requestId };
          return;
        }
        headers['mcp-session-id'] = sessionId;
      }

      let response: IncomingMessage;
      try {
        let retried = false;
        for (;;) {
          const credentials = await options.upstreamHeaders(caller, upstream, { method: ctx.method, url: upstream.url });
          response = await send(ctx, upstream, { ...headers, ...lowerCased(credentials) }, body);
          const stepUp = response.statusCode === 403 ? insufficientScopeOf(response.headers['www-authenticate']) : undefined;
          if (stepUp && options.upstreamInsufficientScope && !retried) {
            response.resume();
            if (!(await options.upstreamInsufficientScope(caller, upstream, credentials, stepUp))) break;
            retried = true;
            continue;
          }
          if (response.statusCode !== 401 || !options.upstreamUnauthorized) break;
          response.resume();
          const again = await options.upstreamUnauthorized(caller, upstream, credentials, retried);
          if (!again) {
            // The grant is now marked for a reconnect: asking for headers again yields the URL elicitation.
            await options.upstreamHeaders(caller, upstream);
            throw new JsonRpcError(JSON_RPC_ERRORS.transport, `${upstream.displayName} refused your connection; connect it again.`);
          }
          retried = true;
        }
      } catch (error) {
        if (error instanceof JsonRpcError) return answerError(ctx, message, requestId, error, upstream);
        const reason = error instanceof Error ? error.message : String(error);
        log.warn('upstream unreachable', { upstream: upstream.name, userId: caller.userId, error: reason });
        ctx.status = ctx.method === 'POST' && requestId !== null ? 200 : 502;
        ctx.body = { jsonrpc: '2.0', error: { code: JSON_RPC_ERRORS.transport, message: `Upstream "${upstream.displayName}" (${upstream.name}) is unavailable: ${safeReason(reason)}` }, id: requestId };
        return;
      }

      if (bridge && ctx.method === 'POST' && message !== undefined) {
        const status = response.statusCode ?? 502;
        if (status >= 200 && status < 300) {
          learn(upstream.url, requestEra, true);
        } else if ([400, 404, 405, 406].includes(status) && (requestEra === 'modern' || initializing) && eraOf(upstream.url)?.[requestEra] === undefined) {
          // Refused without being processed. If the upstream does not speak this request's era at
          // all, the bridge serves it instead; otherwise the refusal is the upstream's answer.
          const modern = await speaksModern(ctx, caller, upstream).catch(() => false);
          learn(upstream.url, 'modern', modern);
          const mismatch = requestEra === 'modern' ? !modern : modern;
          if (mismatch) {
            learn(upstream.url, requestEra, false);
            response.resume();
            return toBridge();
          }
        }
      }

      const upstreamStatus = response.statusCode ?? 502;
      if (upstreamStatus >= 500 || upstreamStatus === 401 || upstreamStatus === 407) {
        // The upstream failed (or still refuses the user's token): the client gets a JSON-RPC error
        // naming it, with its request's id, rather than the upstream's own error page.
        response.resume();
        log.warn('upstream answered with an error', { upstream: upstream.name, userId: caller.userId, status: upstreamStatus });
        ctx.status = 502;
        ctx.set('Cache-Control', 'no-store');
        ctx.body = { jsonrpc: '2.0', error: { code: JSON_RPC_ERRORS.transport, message: `Upstream "${upstream.displayName}" (${upstream.name}) answered HTTP ${upstreamStatus}` }, id: requestId };
        return;
      }

      ctx.respond = false;
      const out: OutgoingHttpHeaders = { 'cache-control': 'no-store' };
      for (const name of forwardedResponseHeaders) {
        const value = single(response.headers[name]);
        if (value !== undefined) out[name] = value;
      }
      const upstreamSession = single(response.headers['mcp-session-id']);
      if (upstreamSession !== undefined) out['mcp-session-id'] = wrapSession(caller, upstream.name, upstreamSession);
      if (response.headers['content-type']?.includes('text/event-stream')) out['x-accel-buffering'] = 'no';
      ctx.res.writeHead(upstreamStatus, out);
      ctx.res.flushHeaders();
      response.pipe(ctx.res);
      response.once('error', () => ctx.res.destroy());
      ctx.res.once('close', () => response.destroy());
    },
  };

  /** A gateway-side error for a request that never reached the upstream. */
  function answerError(ctx: Context, message: JsonRpcMessageShape | undefined, id: unknown, error: JsonRpcError, upstream: McpUpstream): void {
    ctx.set('Cache-Control', 'no-store');
    if (ctx.method !== 'POST' || message === undefined || id === null) {
      ctx.status = error.code === -32042 ? 403 : 502;
      ctx.body = { jsonrpc: '2.0', error: { code: error.code, message: error.message, ...(error.data === undefined ? {} : { data: error.data }) }, id: null };
      return;
    }
    const elicitation = urlElicitationOf(error);
    if (elicitation && isModernVersion(requestProtocolVersion(message, ctx.get('mcp-protocol-version'))) && typeof message.method === 'string' && inputCapableMethods.has(message.method) && declaresUrlElicitation(message)) {
      // MCP 2026-07-28 has no server→client request: the connect link is an input request (SEP-2322).
      ctx.status = 200;
      ctx.body = {
        jsonrpc: '2.0',
        id,
        result: {
          resultType: 'input_required',
          inputRequests: { [`connect-${upstream.name}`]: { method: 'elicitation/create', params: { mode: 'url', ...elicitation } } },
          requestState: signState(currentCaller(ctx), upstream.name, elicitation.elicitationId),
        },
      };
      return;
    }
    log.debug('request answered by the gateway', { upstream: upstream.name, code: error.code, method: typeof message.method === 'string' ? message.method : undefined });
    ctx.status = 200;
    ctx.body = { jsonrpc: '2.0', error: { code: error.code, message: error.message, ...(error.data === undefined ? {} : { data: error.data }) }, id };
  }
}

/** Marks request state the gateway issued itself (for its connect-link input requests). */
const stateMarker = 'consent-gateway.v1.';

function gatewayRequestState(message: JsonRpcMessageShape): string | undefined {
  const state = message.params?.requestState;
  return typeof state === 'string' && state.startsWith(stateMarker) ? state : undefined;
}

function currentCaller(ctx: Context): McpCaller {
  return (ctx.state as { caller: McpCaller }).caller;
}

function declaresUrlElicitation(message: JsonRpcMessageShape): boolean {
  const capabilities = message.params?._meta?.['io.modelcontextprotocol/clientCapabilities'] as { elicitation?: { url?: unknown } } | undefined;
  return capabilities?.elicitation?.url !== undefined;
}

/** The URL elicitation a -32042 error carries (MCP 2025-11-25 URLElicitationRequiredError). */
function urlElicitationOf(error: JsonRpcError): { elicitationId: string; url: string; message: string } | undefined {
  if (error.code !== -32042) return undefined;
  const first = (error.data as { elicitations?: { mode?: string; elicitationId?: string; url?: string; message?: string }[] } | undefined)?.elicitations?.[0];
  if (first?.mode !== 'url' || !first.elicitationId || !first.url) return undefined;
  return { elicitationId: first.elicitationId, url: first.url, message: first.message ?? 'Connect your account to continue.' };
}


function single(value: IncomingHttpHeaders[string]): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Network error text without anything that could carry a credential (URLs with userinfo, headers). */
function safeReason(reason: string): string {
  return reason.replace(/\b[a-z]+:\/\/\S+/gi, '<url>').slice(0, 200);
}


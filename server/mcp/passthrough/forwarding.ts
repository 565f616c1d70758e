import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';

import type { Context } from 'koa';

import type { Logger } from '../../log.js';
import { arrivedBody } from '../arrived-body.js';
import { challengeOf, insufficientScopeOf, type UpstreamChallenge } from '../bearer-challenge.js';
import { isModernVersion, requestProtocolVersion, type JsonRpcMessageShape } from '../http-headers.js';
import { JSON_RPC_ERRORS, JsonRpcError, urlElicitationOf } from '../json-rpc.js';
import type { McpCaller, McpUpstream } from '../types.js';
import { flushHeadersThisTurn, lowerCased } from '../upstream-request.js';

/** Request headers the upstream sees from the client; everything else (cookies, the gateway token) stays here. */
const forwardedRequestHeaders = ['accept', 'content-type', 'mcp-protocol-version', 'mcp-method', 'mcp-name', 'last-event-id'] as const;
/** Response headers the client sees from the upstream; `WWW-Authenticate` of the upstream's AS is never shown. */
const forwardedResponseHeaders = ['content-type', 'cache-control', 'mcp-protocol-version', 'retry-after'] as const;

/** Up to this size an upstream's JSON answer is held and sent with its headers in one write; a larger one streams through. */
const heldAnswerBytes = 1024 * 1024;

/** Methods whose 2026-07-28 results may ask the client for input (SEP-2322). */
const inputCapableMethods = new Set(['tools/call', 'prompts/get', 'resources/read']);

/** The caller's credentials at the upstream and what to do when it refuses them (see `PassthroughOptions`). */
export interface UpstreamAuthorization {
  upstreamHeaders(caller: McpCaller, upstream: McpUpstream, request?: { method: string; url: string }): Promise<Record<string, string>>;
  upstreamUnauthorized?(caller: McpCaller, upstream: McpUpstream, sent: Record<string, string>, retried: boolean, challenge?: UpstreamChallenge): Promise<boolean>;
  upstreamInsufficientScope?(caller: McpCaller, upstream: McpUpstream, sent: Record<string, string>, scopes: string[]): Promise<boolean>;
}

/** Sends the client's request to the upstream with the given headers; resolves with its response (headers read, body not). */
export type SendUpstream = (headers: OutgoingHttpHeaders) => Promise<IncomingMessage>;

/** The client's headers the upstream may see: the forwarded ones and SEP-2243 `Mcp-Param-*` headers. */
export function upstreamRequestHeaders(ctx: Context): Record<string, string> {
  const headers: Record<string, string> = { 'user-agent': 'consent-gateway' };
  for (const name of forwardedRequestHeaders) {
    const value = ctx.get(name);
    if (value !== '') headers[name] = value;
  }
  for (const [name, value] of Object.entries(ctx.req.headers)) {
    // SEP-2243 custom headers mirror tool arguments; the upstream checks them against the body.
    if (name.startsWith('mcp-param-') && typeof value === 'string') headers[name] = value;
  }
  return headers;
}

/**
 * Sends the request with the caller's credentials at the upstream: once more after a step-up
 * (403 `insufficient_scope`) or a 401 the credentials' owner resolved. Throws a {@link JsonRpcError}
 * when the user must connect the upstream (again), anything else when it is unreachable.
 */
export async function sendWithCredentials(ctx: Context, caller: McpCaller, upstream: McpUpstream, auth: UpstreamAuthorization, headers: Record<string, string>, send: SendUpstream): Promise<IncomingMessage> {
  let retried = false;
  for (;;) {
    const credentials = await auth.upstreamHeaders(caller, upstream, { method: ctx.method, url: upstream.url });
    const response = await send({ ...headers, ...lowerCased(credentials) });
    const stepUp = response.statusCode === 403 ? insufficientScopeOf(response.headers['www-authenticate']) : undefined;
    if (stepUp && auth.upstreamInsufficientScope && !retried) {
      response.resume();
      if (!(await auth.upstreamInsufficientScope(caller, upstream, credentials, stepUp))) return response;
      retried = true;
      continue;
    }
    if (response.statusCode !== 401 || !auth.upstreamUnauthorized) return response;
    response.resume();
    const again = await auth.upstreamUnauthorized(caller, upstream, credentials, retried, challengeOf(response.headers));
    if (!again) {
      // The grant is now marked for a reconnect: asking for headers again yields the URL elicitation.
      await auth.upstreamHeaders(caller, upstream);
      throw new JsonRpcError(JSON_RPC_ERRORS.transport, `${upstream.displayName} refused your connection; connect it again.`);
    }
    retried = true;
  }
}

/** The upstream could not be reached: a JSON-RPC error naming it (the reason without URLs). */
export function answerUnreachable(ctx: Context, log: Logger, caller: McpCaller, upstream: McpUpstream, requestId: unknown, error: unknown): void {
  const reason = error instanceof Error ? error.message : String(error);
  log.warn('upstream unreachable', { upstream: upstream.name, userId: caller.userId, error: reason });
  ctx.status = ctx.method === 'POST' && requestId !== null ? 200 : 502;
  ctx.body = { jsonrpc: '2.0', error: { code: JSON_RPC_ERRORS.transport, message: `Upstream "${upstream.displayName}" (${upstream.name}) is unavailable: ${safeReason(reason)}` }, id: requestId };
}

/**
 * A gateway-side error for a request that never reached the upstream. A URL elicitation for an
 * MCP 2026-07-28 request that may ask for input becomes an input request (SEP-2322) whose
 * `requestState` is `signState(elicitationId)`.
 */
export function answerGatewayError(
  ctx: Context,
  log: Logger,
  message: JsonRpcMessageShape | undefined,
  id: unknown,
  error: JsonRpcError,
  upstream: McpUpstream,
  signState: (elicitationId: string) => string,
): void {
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
        requestState: signState(elicitation.elicitationId),
      },
    };
    return;
  }
  log.debug('request answered by the gateway', { upstream: upstream.name, code: error.code, method: typeof message.method === 'string' ? message.method : undefined });
  ctx.status = 200;
  ctx.body = { jsonrpc: '2.0', error: { code: error.code, message: error.message, ...(error.data === undefined ? {} : { data: error.data }) }, id };
}

/**
 * The upstream failed (5xx) or still refuses the user's token (401, 407): the client gets a
 * JSON-RPC error naming it, with its request's id, rather than the upstream's own error page.
 * True when it answered.
 */
export function answeredUpstreamFailure(ctx: Context, log: Logger, caller: McpCaller, upstream: McpUpstream, response: IncomingMessage, requestId: unknown): boolean {
  const upstreamStatus = response.statusCode ?? 502;
  if (upstreamStatus < 500 && upstreamStatus !== 401 && upstreamStatus !== 407) return false;
  response.resume();
  log.warn('upstream answered with an error', { upstream: upstream.name, userId: caller.userId, status: upstreamStatus });
  ctx.status = 502;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { jsonrpc: '2.0', error: { code: JSON_RPC_ERRORS.transport, message: `Upstream "${upstream.displayName}" (${upstream.name}) answered HTTP ${upstreamStatus}` }, id: requestId };
  return true;
}

/**
 * Sends the upstream's answer to the client, its session id wrapped by `wrapSession`: one that
 * came whole with its headers at once, in one write with its length (an event stream that has
 * ended too); else an SSE stream as it comes, and a JSON answer whole once its last byte arrived.
 */
export function pipeUpstreamResponse(ctx: Context, response: IncomingMessage, wrapSession: (sessionId: string) => string): void {
  ctx.respond = false;
  const out: OutgoingHttpHeaders = { 'cache-control': 'no-store' };
  for (const name of forwardedResponseHeaders) {
    const value = single(response.headers[name]);
    if (value !== undefined) out[name] = value;
  }
  const upstreamSession = single(response.headers['mcp-session-id']);
  if (upstreamSession !== undefined) out['mcp-session-id'] = wrapSession(upstreamSession);
  const status = response.statusCode ?? 502;
  // The status is the answer's from here on (the request's metrics read it), even while a JSON body is still arriving.
  ctx.res.statusCode = status;
  const stream = response.headers['content-type']?.includes('text/event-stream') === true;
  if (stream) out['x-accel-buffering'] = 'no';
  const answerWhole = (body: Buffer) => {
    out['content-length'] = body.length;
    ctx.res.writeHead(status, out);
    ctx.res.end(body);
  };
  const whole = arrivedBody(response);
  if (whole !== undefined) {
    answerWhole(whole);
  } else if (stream) {
    // A stream's headers go out at once (with its first event when that is already here), each event as it comes.
    ctx.res.writeHead(status, out);
    let flowing = false;
    response.pipe(ctx.res);
    response.once('data', () => (flowing = true));
    flushHeadersThisTurn(ctx.res, () => flowing);
  } else {
    // A JSON answer goes out with its headers in one write once its last byte arrived; one too large to hold streams through.
    const chunks: Buffer[] = [];
    let size = 0;
    const collect = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size <= heldAnswerBytes) return;
      response.off('data', collect).off('end', answer);
      ctx.res.writeHead(status, out);
      for (const held of chunks) ctx.res.write(held);
      response.pipe(ctx.res);
    };
    const answer = () => answerWhole(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    response.on('data', collect).once('end', answer);
  }
  response.once('error', () => ctx.res.destroy());
  ctx.res.once('close', () => response.destroy());
}

/** Network error text without anything that could carry a credential (URLs with userinfo, headers). */
export function safeReason(reason: string): string {
  return reason.replace(/\b[a-z]+:\/\/\S+/gi, '<url>').slice(0, 200);
}

function declaresUrlElicitation(message: JsonRpcMessageShape): boolean {
  const capabilities = message.params?._meta?.['io.modelcontextprotocol/clientCapabilities'] as { elicitation?: { url?: unknown } } | undefined;
  return capabilities?.elicitation?.url !== undefined;
}

function single(value: IncomingHttpHeaders[string]): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

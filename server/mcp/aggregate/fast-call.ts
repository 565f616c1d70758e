import type { IncomingMessage } from 'node:http';

import { CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY, PROTOCOL_VERSION_META_KEY, type ClientCapabilities } from '@modelcontextprotocol/server';
import type { Context } from 'koa';

import type { Logger } from '../../log.js';
import { arrivedBody } from '../arrived-body.js';
import { challengeOf, type UpstreamChallenge } from '../bearer-challenge.js';
import { MODERN_PROTOCOL_VERSION } from '../http-headers.js';
import type { McpCaller, McpUpstream } from '../types.js';
import { describeUpstreamFailure, safeErrorText } from '../upstream-connections.js';
import { flushHeadersThisTurn, lowerCased, sendUpstreamRequest } from '../upstream-request.js';
import { relayableCapabilities } from './legacy-sessions.js';
import type { UpstreamNaming } from './naming.js';
import { wrapUpstreamState } from './request-state.js';

/** What {@link createFastCall} needs from the aggregate endpoint. */
export interface FastCallOptions {
  log: Logger;
  naming: UpstreamNaming;
  /** How the gateway introduces itself to upstreams. */
  clientInfo: { name: string; version: string };
  /** The era `upstream` is known to speak (learnt by the endpoint's own connections), if any. */
  eraOf(upstream: McpUpstream): 'modern' | 'legacy' | undefined;
  /** What a 2025 connection to `upstream` found of its sessions (`UpstreamEras.legacyLeg`). */
  legacyLeg(upstream: McpUpstream): string | null | undefined;
  /** The caller's credentials for one request to `upstream` (a DPoP proof names its method and URL). */
  headers(caller: McpCaller, upstream: McpUpstream, request: { method: string; url: string }): Promise<Record<string, string>>;
  unauthorized?(caller: McpCaller, upstream: McpUpstream, sent: Record<string, string>, retried: boolean, challenge?: UpstreamChallenge): Promise<boolean>;
  /** Bound on the upstream's answer. */
  timeoutMs: number;
}

/** A 2026-07-28 `tools/call` as the fast path accepts it. */
interface CallMessage {
  jsonrpc: '2.0';
  id: string | number;
  method: 'tools/call';
  params: { name: string; _meta?: Record<string, unknown> } & Record<string, unknown>;
}

/** Results the gateway must rewrite before the client sees them: their state or task id names the upstream. */
const rewritten = /"resultType"\s*:\s*"(?:input_required|task)"/;

/**
 * The aggregate endpoint's fast path for the call that dominates its traffic: a 2026-07-28
 * `tools/call` to an upstream known to speak 2026-07-28. The tool name is mapped back, the
 * request sent with the caller's upstream credentials, and the answer (JSON or SSE) streamed back
 * as it comes; only an input-required or task result is rewritten (its state or task id is
 * prefixed with the upstream, as the SDK path does). No SDK server or client is built for the
 * call. Anything else — an unknown name, a retried round with `requestState`, an upstream of
 * unknown era, a connection that must be made first, a refusal before processing — returns
 * false, and the full endpoint answers instead, with the same result.
 */
export function createFastCall(options: FastCallOptions) {
  const { log, naming } = options;

  function eligible(body: unknown): body is CallMessage {
    const message = body as Partial<CallMessage> | null;
    if (message === null || typeof message !== 'object' || Array.isArray(message) || message.method !== 'tools/call') return false;
    if (typeof message.id !== 'string' && typeof message.id !== 'number') return false;
    const params = message.params;
    return typeof params?.name === 'string' && params['task'] === undefined && params['requestState'] === undefined && params['inputResponses'] === undefined;
  }

  /** Rewrites a JSON-RPC response to this call when its result names the upstream's state or task. */
  function rewrite(text: string, id: string | number, upstream: McpUpstream): string {
    if (!rewritten.test(text)) return text;
    const message = JSON.parse(text) as { id?: unknown; result?: Record<string, unknown> };
    const result = message.result;
    if (message.id !== id || !result) return text;
    if (result['resultType'] === 'input_required') {
      const state = typeof result['requestState'] === 'string' ? result['requestState'] : undefined;
      message.result = { ...result, requestState: wrapUpstreamState(upstream.name, state) };
    } else if (typeof result['taskId'] === 'string') {
      message.result = { ...result, taskId: naming.taskId(upstream, result['taskId']) };
    }
    return JSON.stringify(message);
  }

  /** Whole SSE lines of the answer to call `id`, with the one message that may need it rewritten. */
  function rewriteEvents(lines: string, id: string | number, upstream: McpUpstream): string {
    return lines.includes('"resultType"') ? lines.replace(/^data:(.*)$/gm, (_line, data: string) => `data: ${rewrite(data.trim(), id, upstream)}`) : lines;
  }

  /**
   * Sends `response` to the client, rewriting the one message that may need it: at once, in one
   * write, when it came whole with its headers (an event stream that has ended too); else a JSON
   * answer when its last byte arrives, an event stream as it comes.
   */
  function relay(ctx: Context, response: IncomingMessage, id: string | number, upstream: McpUpstream): void {
    ctx.respond = false;
    const type = response.headers['content-type'] ?? 'application/json';
    const stream = type.includes('text/event-stream');
    // The status is the answer's from here on (the request's metrics read it), even while a JSON body is still arriving.
    ctx.res.statusCode = 200;
    const answer = (text: string) => {
      const body = stream ? rewriteEvents(text, id, upstream) : rewrite(text, id, upstream);
      // Headers and body in one write.
      ctx.res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
      ctx.res.end(body);
    };
    const whole = arrivedBody(response);
    if (whole !== undefined) {
      answer(whole.toString('utf8'));
    } else {
      // What is still arriving comes as text: SSE lines split at newlines, a JSON answer joined.
      response.setEncoding('utf8');
      if (!stream) {
        let text = '';
        response.on('data', (chunk: string) => (text += chunk));
        response.once('end', () => answer(text));
      } else {
        ctx.res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' });
        let pending = '';
        let wrote = false;
        flushHeadersThisTurn(ctx.res, () => wrote);
        response.on('data', (chunk: string) => {
          pending += chunk;
          const end = pending.lastIndexOf('\n');
          if (end < 0) return;
          const lines = pending.slice(0, end + 1);
          pending = pending.slice(end + 1);
          wrote = true;
          ctx.res.write(rewriteEvents(lines, id, upstream));
        });
        response.once('end', () => ctx.res.end(pending));
      }
    }
    response.once('error', () => ctx.res.destroy());
    ctx.res.once('close', () => response.destroy());
  }

  const sendCall = createUpstreamCall(options);

  /** Answers `body` if it is a call the fast path takes; false when the full endpoint must. */
  return async function fastCall(ctx: Context, caller: McpCaller, body: unknown): Promise<boolean> {
    if (!eligible(body)) return false;
    const target = naming.resolveName(body.params.name, caller.upstreams);
    if (!target || options.eraOf(target.upstream) !== 'modern') return false;
    const { upstream } = target;
    log.debug('tools/call on the fast path', { upstream: upstream.name });
    const meta = body.params._meta ?? {};
    const capabilities = meta[CLIENT_CAPABILITIES_META_KEY] as ClientCapabilities | undefined;
    const outgoing = JSON.stringify({
      ...body,
      params: {
        ...body.params,
        name: target.name,
        _meta: {
          ...meta,
          [PROTOCOL_VERSION_META_KEY]: MODERN_PROTOCOL_VERSION,
          [CLIENT_INFO_META_KEY]: options.clientInfo,
          [CLIENT_CAPABILITIES_META_KEY]: relayableCapabilities(capabilities, { tasks: true }),
        },
      },
    });
    const sent = await sendCall(ctx, caller, target, body.id, outgoing);
    if (sent === undefined) return false;
    if ('answer' in sent) ctx.body = sent.answer;
    else relay(ctx, sent.response, body.id, upstream);
    return true;
  };
}

/** What {@link createUpstreamCall} needs: the endpoint's credentials and bounds. */
export type UpstreamCallOptions = Pick<FastCallOptions, 'log' | 'headers' | 'unauthorized' | 'timeoutMs'>;

/** How a call goes on an upstream's stateless 2025 leg (legacy-legs.ts) instead of in 2026-07-28. */
export interface LegacyLeg {
  /** The protocol version the leg speaks. */
  version: string;
  /** The upstream refused the call before processing it. */
  refused(): void;
}

/**
 * Sends one `tools/call` (`payload`, already named for the upstream) to the upstream with the
 * caller's credentials, once more after a 401 the endpoint could fix: in 2026-07-28, or on its
 * stateless 2025 `leg`. Resolves with the upstream's 200 response (its body unread); with the
 * `isError` answer to give when the upstream is unreachable or failed (5xx); or `undefined` when
 * the full endpoint must answer instead (a connection to make first, a refusal before processing).
 */
export function createUpstreamCall(options: UpstreamCallOptions) {
  const { log } = options;
  return async function sendCall(
    ctx: Context,
    caller: McpCaller,
    target: { upstream: McpUpstream; name: string },
    id: string | number,
    payload: string,
    leg?: LegacyLeg,
  ): Promise<{ response: IncomingMessage } | { answer: object } | undefined> {
    const { upstream } = target;
    const body = Buffer.from(payload);
    const base = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'user-agent': 'consent-gateway',
      ...(leg ? { 'mcp-protocol-version': leg.version } : { 'mcp-protocol-version': MODERN_PROTOCOL_VERSION, 'mcp-method': 'tools/call', 'mcp-name': target.name }),
    };
    const unavailable = (reason: string) => ({ answer: unavailableAnswer(id, upstream, reason) });
    for (let retried = false; ; retried = true) {
      let credentials: Record<string, string>;
      try {
        credentials = await options.headers(caller, upstream, { method: 'POST', url: upstream.url });
      } catch {
        // A connection to make first: the full endpoint asks the user, as it always does.
        return undefined;
      }
      let response: IncomingMessage;
      try {
        response = await sendUpstreamRequest(ctx, upstream, { method: 'POST', headers: { ...base, ...lowerCased(credentials) }, body, timeoutMs: options.timeoutMs });
      } catch (error) {
        const reason = describeUpstreamFailure(error);
        log.warn('upstream tools/call failed', { userId: caller.userId, upstream: upstream.name, reason, error: safeErrorText(error) });
        return unavailable(reason);
      }
      const status = response.statusCode ?? 502;
      if (status === 200) return { response };
      response.resume();
      if (status === 401 && !retried && options.unauthorized && (await options.unauthorized(caller, upstream, credentials, false, challengeOf(response.headers)).catch(() => false))) continue;
      if (status >= 500) {
        log.warn('upstream tools/call failed', { userId: caller.userId, upstream: upstream.name, reason: `HTTP ${status}` });
        return unavailable(`it answered HTTP ${status}`);
      }
      // Refused before processing (a stale era, a second 401, a scope to step up to): the full endpoint knows what to say.
      if (status !== 401 && status !== 403) leg?.refused();
      return undefined;
    }
  };
}

/** The answer to call `id` when `upstream` could not give one: an `isError` result saying why (`reason`, safe to show). */
export function unavailableAnswer(id: string | number, upstream: McpUpstream, reason: string): object {
  return { jsonrpc: '2.0', id, result: { isError: true, content: [{ type: 'text', text: `Upstream "${upstream.displayName}" (${upstream.name}) is unavailable: ${reason}.` }] } };
}

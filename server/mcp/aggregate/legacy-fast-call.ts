import type { IncomingMessage } from 'node:http';

import { CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY, PROTOCOL_VERSION_META_KEY, SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/server';
import type { Context } from 'koa';

import { arrivedBody } from '../arrived-body.js';
import { MODERN_PROTOCOL_VERSION } from '../http-headers.js';
import type { McpCaller } from '../types.js';
import { eventData } from '../json-rpc.js';
import { createUpstreamCall, unavailableAnswer, type FastCallOptions, type LegacyLeg } from './fast-call.js';
import { createLegacyLegs } from './legacy-legs.js';
import { relayableCapabilities, type LegacySession } from './legacy-sessions.js';

/** A 2025-era `tools/call` as the legacy fast path accepts it. */
interface LegacyCallMessage {
  jsonrpc: '2.0';
  id: string | number;
  method: 'tools/call';
  params: { name: string; arguments?: Record<string, unknown>; _meta?: Record<string, unknown> } & Record<string, unknown>;
}

/** Upstream notifications a call's stream may carry that the session's client is told of, as the full path does. */
const RELAYED = new Set(['notifications/message', 'notifications/tools/list_changed', 'notifications/prompts/list_changed', 'notifications/resources/list_changed']);

/** What the session's transport accepts in `MCP-Protocol-Version`. */
const SUPPORTED_VERSIONS = new Set(SUPPORTED_PROTOCOL_VERSIONS);

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The aggregate endpoint's fast path for a `tools/call` in a 2025-era session (MCP 2025-11-25)
 * whose client declared nothing an upstream could ask of it (no elicitation, sampling or roots)
 * and sent no progress token: the call needs nothing of the session but its caller. The tool name
 * is mapped back and the call sent with the caller's upstream credentials: in the client's own era
 * to an upstream that takes 2025 calls without a session (legacy-legs.ts), the call as it came;
 * else as one 2026-07-28 request to an upstream known to speak 2026-07-28. The upstream's answer
 * is handed to the client as the session's answer (JSON). No SDK server dispatch, client request
 * or web `Request` is made for the call. Anything else — an unknown name, an upstream of unknown
 * era or with 2025 sessions only, headers the session transport would refuse, a connection to make
 * first — returns false before the upstream is asked, and the session's SDK server answers
 * instead. A 2026-07-28 answer the fast path cannot give as it is (input required, a task) also
 * returns false: the session asks again, as a 2026-07-28 client retrying a multi-round-trip
 * request would. Without `legs`, every call goes the 2026-07-28 way.
 */
export function createLegacyFastCall(options: FastCallOptions, { legs: withLegs }: { legs: boolean } = { legs: true }) {
  const { log, naming } = options;
  const sendCall = createUpstreamCall(options);
  const legs = withLegs ? createLegacyLegs(options) : undefined;

  function eligible(ctx: Context, session: LegacySession, body: unknown): body is LegacyCallMessage {
    if (!isObject(body) || body['jsonrpc'] !== '2.0' || body['method'] !== 'tools/call') return false;
    const id = body['id'];
    if (typeof id !== 'string' && typeof id !== 'number') return false;
    const params = body['params'];
    if (!isObject(params) || typeof params['name'] !== 'string') return false;
    if (params['task'] !== undefined || params['requestState'] !== undefined || params['inputResponses'] !== undefined) return false;
    if (params['arguments'] !== undefined && !isObject(params['arguments'])) return false;
    const meta = params['_meta'];
    if (meta !== undefined && (!isObject(meta) || meta['progressToken'] !== undefined)) return false;
    // What the session's transport checks before it dispatches: it answers a refusal itself.
    const accept = ctx.get('accept');
    if (!accept.includes('application/json') || !accept.includes('text/event-stream')) return false;
    const version = ctx.get('mcp-protocol-version');
    if (version !== '' && !SUPPORTED_VERSIONS.has(version)) return false;
    if (session.id === undefined || session.ended !== undefined) return false;
    return asksNothing(session);
  }

  /** Sessions whose client declared nothing an upstream could ask of it: fixed once the session is initialized, so decided once. */
  const declaredNothing = new WeakMap<LegacySession, boolean>();
  function asksNothing(session: LegacySession): boolean {
    let nothing = declaredNothing.get(session);
    if (nothing === undefined) {
      const capabilities = session.server.getClientCapabilities();
      nothing = Object.keys(relayableCapabilities(capabilities)).length === 0;
      if (capabilities !== undefined) declaredNothing.set(session, nothing);
    }
    return nothing;
  }

  /**
   * The upstream's answer to call `id` as the session's client gets it: the response message (a
   * `result` without its 2026-07-28 `resultType`, or an `error`) as JSON text, or `undefined` when
   * it is a result the 2025 era cannot carry. `text` is the upstream's whole body; `leg` tells that
   * the upstream answered in the 2025 era itself. A message that needs no change goes on as the
   * upstream wrote it. Notifications on the call's stream go to the session's client; a request
   * on it (the client declared nothing it could answer) is passed over.
   */
  function answerText(text: string, type: string, id: string | number, session: LegacySession, leg: boolean): string | undefined {
    const messages = type.includes('text/event-stream') ? eventData(text) : [text];
    for (const data of messages) {
      let message: Record<string, unknown>;
      try {
        const parsed = JSON.parse(data) as unknown;
        if (!isObject(parsed)) continue;
        message = parsed;
      } catch {
        continue;
      }
      if (typeof message['method'] === 'string') {
        if (message['id'] === undefined && RELAYED.has(message['method'])) {
          const params = isObject(message['params']) ? { params: message['params'] } : {};
          session.server.notification({ method: message['method'], ...params } as never).catch(() => undefined);
        }
        continue;
      }
      if (message['id'] !== id) continue;
      const plain = message['jsonrpc'] === '2.0' && hasOnlyKeys(message, ANSWER_KEYS);
      if (isObject(message['error'])) return plain && message['result'] === undefined ? data : JSON.stringify({ jsonrpc: '2.0', id, error: message['error'] });
      const result = message['result'];
      if (leg) {
        // The upstream's own 2025 answer: the client's era, nothing to take out.
        if (!isObject(result)) throw new Error('it answered the call with no result');
        return plain ? data : JSON.stringify({ jsonrpc: '2.0', id, result });
      }
      if (!isObject(result) || (result['resultType'] !== undefined && result['resultType'] !== 'complete')) return undefined;
      if (plain && result['resultType'] === undefined) return data;
      const cut = plain ? withoutCompleteResultType(data) : undefined;
      if (cut !== undefined) return cut;
      const { resultType: _complete, ...rest } = result;
      return JSON.stringify({ result: rest, jsonrpc: '2.0', id });
    }
    throw new Error('it sent no answer to the call');
  }

  /**
   * Reads the upstream's answer to call `id` whole and gives it to the client in the turn its
   * last byte arrived, before the upstream connection goes back to the pool. Resolves true once
   * answered (or the client went away), false when the answer is a result the 2025 era cannot
   * carry (nothing written); rejects with a reason the user may see.
   */
  function relayAnswer(ctx: Context, response: IncomingMessage, id: string | number, session: LegacySession, leg: boolean): Promise<boolean> {
    const type = response.headers['content-type'] ?? '';
    /** Answers the client from the upstream's whole body; true when it did (see above). */
    const answerWith = (text: string): boolean => {
      const answer = answerText(text, type, id, session, leg);
      if (answer !== undefined) respond(ctx, session, answer);
      return answer !== undefined;
    };
    const whole = arrivedBody(response);
    if (whole !== undefined) {
      try {
        return Promise.resolve(answerWith(whole.toString('utf8')));
      } catch (error) {
        return Promise.reject(error as Error);
      }
    }
    response.setEncoding('utf8');
    let text = '';
    let late = false;
    let settled = false;
    return new Promise<boolean>((resolve, reject) => {
      // The reasons are the gateway's own words: they are shown to the user.
      const failed = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(new Error(late ? 'it did not answer in time' : 'the connection to it closed'));
      };
      const timer = setTimeout(() => {
        late = true;
        response.destroy();
      }, options.timeoutMs);
      const ended = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        try {
          resolve(answerWith(text));
        } catch (error) {
          reject(error as Error);
        }
      };
      response.on('data', (chunk: string) => (text += chunk));
      response.once('end', ended);
      response.once('error', failed);
      response.once('close', () => (response.complete ? ended() : failed()));
    });
  }

  /** Answers `body` in `session` if it is a call the fast path takes; false when the session's server must. */
  return async function legacyFastCall(ctx: Context, session: LegacySession, caller: McpCaller, body: unknown): Promise<boolean> {
    if (!eligible(ctx, session, body)) return false;
    const target = naming.resolveName(body.params.name, caller.upstreams);
    if (!target) return false;
    const { upstream } = target;
    const era = options.eraOf(upstream);
    // An upstream of unknown era is first met by the session's server, which learns it.
    if (era === undefined) return false;
    const known = legs?.versionFor(ctx, caller, upstream);
    const version = known instanceof Promise ? await known : known;
    if (version === undefined && era !== 'modern') return false;
    if (ctx.res.writableEnded || ctx.res.destroyed) return true;
    const leg: LegacyLeg | undefined = version === undefined ? undefined : { version, refused: () => legs?.refused(upstream) };
    log.debug('tools/call on the legacy fast path', { upstream: upstream.name, sentAs: version ?? MODERN_PROTOCOL_VERSION });
    const { task: _task, _meta: meta, ...params } = body.params;
    // As the full path: the client's own `_meta` goes on, the 2026-07-28 envelope is the gateway's.
    const forwarded = Object.fromEntries(Object.entries(meta ?? {}).filter(([key]) => !key.startsWith('io.modelcontextprotocol/')));
    const outgoing = leg ? forwarded : { ...forwarded, [PROTOCOL_VERSION_META_KEY]: MODERN_PROTOCOL_VERSION, [CLIENT_INFO_META_KEY]: options.clientInfo, [CLIENT_CAPABILITIES_META_KEY]: {} };
    const payload = JSON.stringify({
      jsonrpc: '2.0',
      id: body.id,
      method: 'tools/call',
      params: { ...params, name: target.name, ...(Object.keys(outgoing).length > 0 ? { _meta: outgoing } : {}) },
    });
    const sent = await sendCall(ctx, caller, target, body.id, payload, leg);
    if (sent === undefined) return false;
    if ('answer' in sent) {
      respond(ctx, session, JSON.stringify(sent.answer));
      return true;
    }
    try {
      return await relayAnswer(ctx, sent.response, body.id, session, leg !== undefined);
    } catch (error) {
      if (ctx.res.writableEnded || ctx.res.destroyed) return true;
      const reason = error instanceof Error ? error.message : String(error);
      log.warn('upstream tools/call failed', { userId: caller.userId, upstream: upstream.name, reason });
      respond(ctx, session, JSON.stringify(unavailableAnswer(body.id, upstream, reason)));
      return true;
    }
  };
}

/** Writes `answer` as the session's JSON response, headers and body in one write; nothing when the response ended meanwhile (the client went away, or cancelled the call: no answer follows a cancelled request). */
function respond(ctx: Context, session: LegacySession, answer: string): void {
  if (ctx.res.writableEnded || ctx.res.destroyed) return;
  ctx.respond = false;
  ctx.res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'mcp-session-id': session.id!, 'content-length': Buffer.byteLength(answer) });
  ctx.res.end(answer);
}

/** The members a JSON-RPC response may have (JSON-RPC 2.0 §5). */
const ANSWER_KEYS = new Set(['jsonrpc', 'id', 'result', 'error']);

function hasOnlyKeys(value: Record<string, unknown>, keys: ReadonlySet<string>): boolean {
  for (const key in value) if (!keys.has(key)) return false;
  return true;
}

/** `"resultType": "complete"` as a member of an object, with the comma that joins it to the next member, if any. */
const COMPLETE_RESULT_TYPE = /([{,])\s*"resultType"\s*:\s*"complete"\s*(,?)/g;

/**
 * `text`, one JSON-RPC response whose result says `"resultType": "complete"`, with that member cut
 * out and nothing else changed; `undefined` when the member cannot be told apart from others in
 * the text (written with escapes, or another member of that name and value nested in the result).
 * In valid JSON a `"` after `{` or `,` opens a string, and a string followed by `:` is a member
 * name, so a single match is the result's own member.
 */
export function withoutCompleteResultType(text: string): string | undefined {
  if (text.includes('\\u')) return undefined;
  // A second member of that name anywhere (nested, or repeated with another value): not this shortcut.
  if (text.indexOf('"resultType"') !== text.lastIndexOf('"resultType"')) return undefined;
  const matches = [...text.matchAll(COMPLETE_RESULT_TYPE)];
  if (matches.length !== 1) return undefined;
  const [match] = matches as [RegExpMatchArray];
  const start = match.index!;
  const end = start + match[0].length;
  // Followed by another member: the member and its comma go. The last member: the comma before it goes (not a `{`).
  if (match[2] === ',') return text.slice(0, start + 1) + text.slice(end);
  return (match[1] === '{' ? text.slice(0, start + 1) : text.slice(0, start)) + text.slice(end);
}

import type { IncomingMessage } from 'node:http';

import type { Context } from 'koa';

import { arrivedBody } from './arrived-body.js';

/** JSON-RPC 2.0 and MCP error codes the endpoint answers with at the HTTP level. */
export const JSON_RPC_ERRORS = {
  parseError: -32700,
  invalidRequest: -32600,
  invalidParams: -32602,
  internalError: -32603,
  /** The SDK's generic transport-level error code (bad headers, missing session id, size). */
  transport: -32000,
  /** What the SDK answers for an unknown or ended session. */
  sessionNotFound: -32001,
} as const;

/**
 * An error a request handler throws to answer with a JSON-RPC error object of exactly this
 * code, message and data (JSON-RPC 2.0 §5.1). Unlike the SDK's `McpError`, the message is sent
 * as given, without an `MCP error <code>:` prefix.
 */
export class JsonRpcError extends Error {
  override name = 'JsonRpcError';

  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

/**
 * Answers with a JSON-RPC error response. Its `id` is the request's when `body` is one request
 * whose id could be read (JSON-RPC 2.0 §5), null otherwise (a batch, a notification, a body that
 * could not be read).
 */
export function respondWithJsonRpcError(ctx: Context, status: number, code: number, message: string, body?: unknown): void {
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { jsonrpc: '2.0', error: { code, message }, id: requestIdOf(body) };
}

/** The id of a single JSON-RPC request (a string or a number); null for anything else. */
export function requestIdOf(body: unknown): string | number | null {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return null;
  const { id, method } = body as { id?: unknown; method?: unknown };
  return typeof method === 'string' && (typeof id === 'string' || typeof id === 'number') ? id : null;
}

/**
 * How deeply a request body may nest arrays and objects. Validating a deeper one recursively
 * would overflow the stack; no MCP message comes near it.
 */
export const MAX_JSON_DEPTH = 100;

/** Whether `value` nests arrays and objects more than `max` levels deep; checked without recursion. */
function nestedDeeperThan(value: unknown, max: number): boolean {
  const pending: { value: unknown; depth: number }[] = [{ value, depth: 0 }];
  while (pending.length > 0) {
    const { value: current, depth } = pending.pop()!;
    if (typeof current !== 'object' || current === null) continue;
    if (depth + 1 > max) return true;
    for (const child of Array.isArray(current) ? current : Object.values(current)) pending.push({ value: child, depth: depth + 1 });
  }
  return false;
}

/** The outcome of {@link readJsonBody}. */
export type JsonBody =
  | { ok: true; value: unknown; /** The body as received. */ raw: Buffer }
  | { ok: false; status: 400 | 413; code: number; message: string; aborted?: boolean };

/**
 * Reads and parses a JSON request body of at most `maxBytes`. A declared `Content-Length` over
 * the limit is refused before anything is read; a body that grows past it stops being collected
 * (the rest is discarded, not buffered). Rejects when the body was already consumed, which is a
 * wiring mistake (a body parser in front), not the client's.
 */
export function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<JsonBody> {
  const tooLarge: JsonBody = {
    ok: false,
    status: 413,
    code: JSON_RPC_ERRORS.transport,
    message: `Payload Too Large: Request body must not exceed ${maxBytes} bytes`,
  };
  if (req.readableEnded) return Promise.reject(new Error('the /mcp request body was already read by an earlier middleware'));
  if (Number(req.headers['content-length']) > maxBytes) {
    req.resume();
    return Promise.resolve(tooLarge);
  }
  // A small body has usually arrived whole with the headers: it is taken at once, without waiting for stream events.
  const arrived = req.readableLength <= maxBytes ? arrivedBody(req) : undefined;
  if (arrived !== undefined) return Promise.resolve(parseJsonBody(arrived));
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (result: JsonBody) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onAbort);
      req.off('close', onAbort);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        finish(tooLarge);
        // Keep the socket flowing so the 413 can be written; the excess is dropped.
        req.resume();
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => finish(parseJsonBody(Buffer.concat(chunks, size)));
    const onAbort = () => finish({ ok: false, status: 400, code: JSON_RPC_ERRORS.parseError, message: 'Parse error: request body ended early', aborted: true });
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onAbort);
    req.once('close', onAbort);
  });
}

/** Parses a whole request body read by {@link readJsonBody}. */
function parseJsonBody(raw: Buffer): JsonBody {
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8')) as unknown;
  } catch {
    return { ok: false, status: 400, code: JSON_RPC_ERRORS.parseError, message: 'Parse error: Invalid JSON' };
  }
  // Nesting deeper than the limit takes more opening brackets than that: the walk is needed only then.
  if (openingBrackets(raw) > MAX_JSON_DEPTH && nestedDeeperThan(value, MAX_JSON_DEPTH)) {
    return { ok: false, status: 400, code: JSON_RPC_ERRORS.invalidRequest, message: `Invalid Request: the body nests more than ${MAX_JSON_DEPTH} levels deep` };
  }
  return { ok: true, value, raw };
}

/** How many `{` and `[` bytes `raw` holds (in strings too: an upper bound on the nesting depth). */
function openingBrackets(raw: Buffer): number {
  let count = 0;
  for (let index = 0; index < raw.length; index += 1) {
    const byte = raw[index];
    if (byte === 0x7b || byte === 0x5b) count += 1;
  }
  return count;
}

/**
 * The URL elicitation an upstream-connection error carries (-32042, MCP 2025-11-25 SEP-1036): the
 * connect link the client must open first; undefined for any other error.
 */
export function urlElicitationOf(error: { code: number; data?: unknown }): { elicitationId: string; url: string; message: string } | undefined {
  if (error.code !== -32042) return undefined;
  const first = (error.data as { elicitations?: { mode?: string; elicitationId?: string; url?: string; message?: string }[] } | undefined)?.elicitations?.[0];
  if (first?.mode !== 'url' || !first.elicitationId || !first.url) return undefined;
  return { elicitationId: first.elicitationId, url: first.url, message: first.message ?? 'Connect your account to continue.' };
}

/** The `data` of each event of a complete `text/event-stream` body (WHATWG HTML §9.2.6, without ids or retries). */
export function eventData(text: string): string[] {
  const events: string[] = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    const data = block
      .split(/\r?\n/)
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5));
    if (data.length > 0) events.push(data.join('\n'));
  }
  return events;
}

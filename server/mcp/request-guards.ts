import type { Context } from 'koa';

import { JSON_RPC_ERRORS, readJsonBody, respondWithJsonRpcError, type JsonBody } from './json-rpc.js';

/**
 * Answers what an MCP endpoint serves no further: 503 once it is shutting down, 405 (with `Allow`)
 * for a method other than POST, GET and DELETE (MCP 2025-11-25 Basic/Transports §Streamable HTTP).
 * True when it answered.
 */
export function refusedBeforeReading(ctx: Context, closed: boolean): boolean {
  if (closed) {
    respondWithJsonRpcError(ctx, 503, JSON_RPC_ERRORS.transport, 'Service Unavailable: the server is shutting down');
    return true;
  }
  if (ctx.method !== 'POST' && ctx.method !== 'GET' && ctx.method !== 'DELETE') {
    ctx.set('Allow', 'GET, POST, DELETE');
    respondWithJsonRpcError(ctx, 405, JSON_RPC_ERRORS.transport, 'Method not allowed.');
    return true;
  }
  return false;
}

/**
 * Reads a POST's JSON body of at most `maxBodyBytes`. Answers 415 (not JSON), 413 (too large,
 * closing the connection) or 400 (not JSON-RPC-parsable) itself and resolves `undefined` then.
 */
export async function readPostBody(ctx: Context, maxBodyBytes: number): Promise<Extract<JsonBody, { ok: true }> | undefined> {
  // The content type MCP clients send is recognised at once; anything else is parsed as a media type.
  if (ctx.get('content-type') !== 'application/json' && !ctx.is('application/json')) {
    respondWithJsonRpcError(ctx, 415, JSON_RPC_ERRORS.transport, 'Unsupported Media Type: Content-Type must be application/json');
    return undefined;
  }
  const read = await readJsonBody(ctx.req, maxBodyBytes);
  if (!read.ok) {
    if (read.status === 413) ctx.set('Connection', 'close');
    respondWithJsonRpcError(ctx, read.status, read.code, read.message);
    return undefined;
  }
  return read;
}

/**
 * Set in `ctx.state.toolCallGuard` by the auth layer in front of an MCP endpoint: throws the HTTP
 * refusal (403 `insufficient_scope`) of a `tools/call` of `name`, as the endpoint names its tools,
 * that the caller's token may not make.
 */
export type ToolCallGuard = (name: string) => void;

/**
 * Runs the auth layer's {@link ToolCallGuard}, when it set one, on each `tools/call` of a parsed
 * POST body (one message or a batch): an endpoint calls it once it read the body, before anything
 * is answered or forwarded.
 */
export function guardToolCalls(ctx: Context, body: unknown): void {
  const guard = (ctx.state as { toolCallGuard?: ToolCallGuard }).toolCallGuard;
  if (!guard) return;
  for (const message of Array.isArray(body) ? body : [body]) {
    const call = message as { method?: unknown; params?: { name?: unknown } | null } | null;
    if (call?.method === 'tools/call' && typeof call.params?.name === 'string') guard(call.params.name);
  }
}

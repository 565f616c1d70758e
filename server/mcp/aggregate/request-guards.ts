import { classifyInboundRequest } from '@modelcontextprotocol/server';
import type { Context } from 'koa';

import { JSON_RPC_ERRORS } from '../json-rpc.js';
import type { McpCaller } from '../types.js';

/** A request failed before or while its response was written: answer 500 if nothing was sent yet. */
export function respondAfterFailure(ctx: Context): void {
  ctx.respond = false;
  if (!ctx.res.headersSent) {
    ctx.res.writeHead(500, { 'Content-Type': 'application/json' });
    ctx.res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: JSON_RPC_ERRORS.internalError, message: 'Internal error' }, id: null }));
  } else {
    ctx.res.end();
  }
}

const PROTOCOL_VERSION_KEY = 'io.modelcontextprotocol/protocolVersion';

/**
 * Whether `body` is a request or notification other than `initialize` whose params carry the
 * 2026-07-28 envelope claim (the protocol-version `_meta` key). Such a message is never 2025-era
 * traffic: the SDK's classification makes it modern, or refuses it, which the modern side answers.
 * Decided from the keys alone, without the schema validation of the whole message the full
 * classification runs on every POST (`test/server/mcp/era-classification.test.ts` holds the two
 * to the same answers).
 */
function claimsEnvelope(body: unknown): boolean {
  const message = body as { method?: unknown; params?: { _meta?: unknown } } | null | undefined;
  if (message?.method === 'initialize') return false;
  const meta = message?.params?._meta;
  return typeof meta === 'object' && meta !== null && PROTOCOL_VERSION_KEY in meta;
}

/**
 * Whether a POST with this parsed body is 2025-era traffic: the SDK's own classification
 * (`isLegacyRequest`), read from the Node request's headers without building a web `Request`.
 */
export function isLegacy(ctx: Context, body: unknown): boolean {
  if (claimsEnvelope(body)) return false;
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

/** Whether `value` is the `ctx.state.caller` the auth layer sets. */
export function isCaller(value: unknown): value is McpCaller {
  const caller = value as Partial<McpCaller> | null | undefined;
  return typeof caller?.userId === 'string' && typeof caller.clientId === 'string' && Array.isArray(caller.upstreams);
}

import { classifyInboundRequest, PROTOCOL_VERSION_META_KEY, SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/server';
import type { Context } from 'koa';

import { MODERN_PROTOCOL_VERSION } from '../http-headers.js';
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

/**
 * Whether `body` is a request or notification other than `initialize` whose params carry the
 * 2026-07-28 envelope claim (the protocol-version `_meta` key). Such a message is never 2025-era
 * traffic: the SDK's classification makes it modern, or refuses it, which the modern side answers.
 * Decided from the keys alone, without the schema validation of the whole message the full
 * classification runs on every POST.
 */
function claimsEnvelope(body: unknown): boolean {
  const message = body as { method?: unknown; params?: { _meta?: unknown } } | null | undefined;
  if (message?.method === 'initialize') return false;
  const meta = message?.params?._meta;
  return typeof meta === 'object' && meta !== null && PROTOCOL_VERSION_META_KEY in meta;
}

/** Versions before 2026-07-28 a 2025-era client names in its `MCP-Protocol-Version` header. */
const LEGACY_VERSIONS = new Set(SUPPORTED_PROTOCOL_VERSIONS.filter((version) => version < MODERN_PROTOCOL_VERSION));
const REQUEST_KEYS = new Set(['jsonrpc', 'id', 'method', 'params']);

/**
 * Whether `body` is a 2025-era request as such clients send it after `initialize`: a well-formed
 * JSON-RPC request with no `_meta` in its params, under no header or a 2025-era version. The
 * SDK's classification makes such a request legacy; this recognises the plain case from its keys,
 * and leaves everything else to that classification.
 */
function plainLegacyRequest(body: unknown, versionHeader: string | undefined): boolean {
  if (versionHeader !== undefined && !LEGACY_VERSIONS.has(versionHeader)) return false;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  const message = body as Record<string, unknown>;
  for (const key in message) if (!REQUEST_KEYS.has(key)) return false;
  const { id, method, params } = message;
  if (message['jsonrpc'] !== '2.0' || typeof method !== 'string') return false;
  if (typeof id !== 'string' && !Number.isSafeInteger(id)) return false;
  return params === undefined || (typeof params === 'object' && params !== null && !Array.isArray(params) && !('_meta' in params));
}

/**
 * Whether a POST with this parsed body is 2025-era traffic: the SDK's own classification
 * (`isLegacyRequest`), read from the Node request's headers without building a web `Request`.
 * The two plain cases, a 2026-07-28 request with its envelope and a 2025-era request in a
 * session, are decided from their keys first (`test/server/mcp/era-classification.test.ts`
 * holds both to the SDK's answers).
 */
export function isLegacy(ctx: Context, body: unknown): boolean {
  if (claimsEnvelope(body)) return false;
  const header = (name: string) => {
    const value = ctx.req.headers[name];
    return Array.isArray(value) ? value.join(', ') : value;
  };
  const protocolVersionHeader = header('mcp-protocol-version');
  if (plainLegacyRequest(body, protocolVersionHeader)) return true;
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

/** The first MCP revision whose HTTP requests carry `Mcp-Method`/`Mcp-Name` and no session (SEP-2243, SEP-2575). */
export const MODERN_PROTOCOL_VERSION = '2026-07-28';

/** JSON-RPC error code for a request whose MCP headers contradict its body (SEP-2243 HeaderMismatch). */
export const HEADER_MISMATCH = -32020;

const protocolVersionMeta = 'io.modelcontextprotocol/protocolVersion';

/** A parsed JSON-RPC message as far as the endpoints look into it. */
export interface JsonRpcMessageShape {
  jsonrpc?: unknown;
  id?: unknown;
  method?: unknown;
  params?: { name?: unknown; uri?: unknown; _meta?: Record<string, unknown> } & Record<string, unknown>;
}

/** The protocol revision a request speaks: its `_meta` version, else its `MCP-Protocol-Version` header. */
export function requestProtocolVersion(message: JsonRpcMessageShape | undefined, header: string): string | undefined {
  const meta = message?.params?._meta?.[protocolVersionMeta];
  if (typeof meta === 'string') return meta;
  return header.trim() || undefined;
}

/** True for a request of MCP 2026-07-28 or later (stateless; headers mirror the body). */
export function isModernVersion(version: string | undefined): boolean {
  return version !== undefined && /^\d{4}-\d{2}-\d{2}$/.test(version) && version >= MODERN_PROTOCOL_VERSION;
}

/** What `Mcp-Name` must say for a message, or `undefined` for methods that name nothing. */
export function expectedMcpName(message: JsonRpcMessageShape): string | undefined {
  const params = message.params;
  switch (message.method) {
    case 'tools/call':
    case 'prompts/get':
      return typeof params?.name === 'string' ? params.name : undefined;
    case 'resources/read':
    case 'resources/subscribe':
    case 'resources/unsubscribe':
      return typeof params?.uri === 'string' ? params.uri : undefined;
    default:
      return undefined;
  }
}

/**
 * Checks a modern request's standard headers against its body (MCP 2026-07-28, Streamable HTTP,
 * SEP-2243): `Mcp-Method` must equal `method`, `Mcp-Name` the tool or prompt name or resource URI,
 * and `MCP-Protocol-Version` the version in `_meta`. Header values are compared exactly after
 * trimming surrounding whitespace. Returns the reason for a mismatch, or `undefined`.
 */
export function headerMismatch(message: JsonRpcMessageShape, headers: { method: string; name: string; version: string }): string | undefined {
  const method = headers.method.trim();
  if (typeof message.method === 'string') {
    if (method === '') return 'the Mcp-Method header is required';
    if (method !== message.method) return `the Mcp-Method header (${method}) does not match the body's method (${message.method})`;
  }
  const expected = expectedMcpName(message);
  const name = headers.name.trim();
  if (expected !== undefined) {
    if (name === '') return 'the Mcp-Name header is required for this method';
    if (name !== expected) return `the Mcp-Name header does not match the body (${JSON.stringify(expected)})`;
  }
  const meta = message.params?._meta?.[protocolVersionMeta];
  const version = headers.version.trim();
  if (typeof meta === 'string' && version !== '' && version !== meta) {
    return `the MCP-Protocol-Version header (${version}) does not match the body's protocol version (${meta})`;
  }
  return undefined;
}

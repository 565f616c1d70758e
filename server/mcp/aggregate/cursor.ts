/**
 * Where a paginated aggregate list stands: for each upstream still to be read, the cursor of its
 * next page (`null`: its first page). Upstreams absent from the map are finished.
 */
export type ListPosition = Map<string, string | null>;

/** The version tag at the start of every gateway cursor. */
const CURSOR_VERSION = 'g1';

/**
 * Encodes `position` as an opaque gateway cursor (MCP Server/Utilities §Pagination): base64url
 * JSON of each unfinished upstream's own cursor. Not signed: each upstream checks its own cursor,
 * and the gateway checks that every upstream named is one the caller may use.
 */
export function encodeListCursor(position: ListPosition): string | undefined {
  if (position.size === 0) return undefined;
  return `${CURSOR_VERSION}.${Buffer.from(JSON.stringify([...position]), 'utf8').toString('base64url')}`;
}

/**
 * Decodes a gateway cursor; `undefined` when it is not one this gateway made for a caller with
 * these upstreams (garbage, truncated, or naming an upstream the caller may not use).
 */
export function decodeListCursor(cursor: string, upstreams: ReadonlySet<string>): ListPosition | undefined {
  const [version, body, ...rest] = cursor.split('.');
  if (version !== CURSOR_VERSION || body === undefined || rest.length > 0 || !/^[A-Za-z0-9_-]+$/.test(body)) return undefined;
  let entries: unknown;
  try {
    entries = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (!Array.isArray(entries) || entries.length === 0) return undefined;
  const position: ListPosition = new Map();
  for (const entry of entries) {
    if (!Array.isArray(entry) || entry.length !== 2) return undefined;
    const [name, next] = entry as unknown[];
    if (typeof name !== 'string' || !upstreams.has(name) || position.has(name)) return undefined;
    if (next !== null && typeof next !== 'string') return undefined;
    position.set(name, next);
  }
  return position;
}

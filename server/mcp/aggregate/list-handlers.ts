import { ProtocolError, type Server, type ServerContext } from '@modelcontextprotocol/server';
import * as z from 'zod';

import { JSON_RPC_ERRORS } from '../json-rpc.js';
import type { McpUpstream } from '../types.js';
import { describeUpstreamFailure, safeErrorText } from '../upstream-connections.js';
import { decodeListCursor, encodeListCursor, type ListPosition } from './cursor.js';
import type { AggregateHandlerOptions, AggregateScope } from './handlers.js';
import type { Item } from './upstream-forward.js';

/** Each list method and the key of its items. */
const LIST_KINDS = {
  'tools/list': 'tools',
  'prompts/list': 'prompts',
  'resources/list': 'resources',
  'resources/templates/list': 'resourceTemplates',
} as const;

type ListMethod = keyof typeof LIST_KINDS;

/** Keeps every object as the upstream sent it: the gateway renames, never re-serialises through a narrower schema. */
const RawList = z.looseObject({ nextCursor: z.string().optional() });

const UNKNOWN_CURSOR = 'Invalid cursor: it was not issued by this endpoint for this caller, or it was altered.';

/**
 * Registers on `server` the list methods of the aggregate endpoint: each page merges one page of
 * every upstream of the scope, names and URIs mapped, its cursor holding each upstream's own.
 */
export function registerListHandlers(server: Server, scope: AggregateScope, options: AggregateHandlerOptions): void {
  const { log, naming, listTimeoutMs } = options;

  async function listPage(method: ListMethod, cursor: string | undefined, rename: (upstream: McpUpstream, item: Item) => Item | undefined, ctx: ServerContext) {
    const caller = scope.caller();
    const key = LIST_KINDS[method];
    let position: ListPosition;
    if (cursor === undefined) {
      position = new Map(caller.upstreams.map((upstream) => [upstream.name, null]));
    } else {
      const decoded = decodeListCursor(cursor, new Set(caller.upstreams.map((upstream) => upstream.name)));
      if (!decoded) throw new ProtocolError(JSON_RPC_ERRORS.invalidParams, UNKNOWN_CURSOR);
      position = decoded;
    }
    const next: ListPosition = new Map();
    // The shortest lifetime any upstream allows; a page missing an upstream (or its hint) is not cached.
    let ttlMs: number | undefined = Number.POSITIVE_INFINITY;
    const pages = await Promise.all(
      [...position].map(async ([name, upstreamCursor]) => {
        const upstream = scope.caller().upstreams.find((candidate) => candidate.name === name)!;
        try {
          const page = await scope.upstreams.use(upstream, (client) =>
            client.request({ method, params: upstreamCursor === null ? {} : { cursor: upstreamCursor } }, RawList, { timeout: listTimeoutMs, signal: ctx.mcpReq.signal }),
          );
          if (page.nextCursor !== undefined) next.set(name, page.nextCursor);
          const upstreamTtl = page['ttlMs'];
          ttlMs = typeof upstreamTtl === 'number' && Number.isSafeInteger(upstreamTtl) && upstreamTtl >= 0 && ttlMs !== undefined ? Math.min(ttlMs, upstreamTtl) : undefined;
          const items = Array.isArray(page[key]) ? (page[key] as unknown[]) : [];
          return items.flatMap((item) => {
            const renamed = typeof item === 'object' && item !== null ? rename(upstream, item as Item) : undefined;
            if (!renamed) log.warn('upstream item left out: not valid, or its name would route to another upstream', { upstream: name, method });
            return renamed ? [renamed] : [];
          });
        } catch (error) {
          log.warn(`upstream left out of ${method}`, { upstream: name, userId: caller.userId, reason: describeUpstreamFailure(error), error: safeErrorText(error) });
          ttlMs = undefined;
          return [];
        }
      }),
    );
    const nextCursor = encodeListCursor(next);
    // MCP 2026-07-28 caching (SEP-2549): what this list holds depends on the caller's grant, so it
    // is never shared across authorization contexts, whatever each upstream says of its own.
    const hints = scope.era === 'modern' ? { ttlMs: ttlMs === undefined || ttlMs === Number.POSITIVE_INFINITY ? 0 : ttlMs, cacheScope: 'private' } : {};
    return { [key]: pages.flat(), ...(nextCursor !== undefined ? { nextCursor } : {}), ...hints };
  }

  /** Renames a tool or prompt; `undefined` when the result would not route back to the same upstream. */
  const renameNamed = (upstream: McpUpstream, item: Item): Item | undefined => {
    if (typeof item['name'] !== 'string') return undefined;
    const name = naming.name(upstream, item['name']);
    if (naming.resolveName(name, scope.caller().upstreams)?.upstream.name !== upstream.name) return undefined;
    return { ...item, name };
  };
  const renameResource = (upstream: McpUpstream, item: Item): Item | undefined =>
    typeof item['uri'] === 'string' ? { ...item, uri: naming.uri(upstream, item['uri']) } : undefined;
  const renameTemplate = (upstream: McpUpstream, item: Item): Item | undefined =>
    typeof item['uriTemplate'] === 'string' ? { ...item, uriTemplate: naming.uri(upstream, item['uriTemplate']) } : undefined;

  server.setRequestHandler('tools/list', (request, ctx) => listPage('tools/list', request.params?.cursor, renameNamed, ctx) as never);
  server.setRequestHandler('prompts/list', (request, ctx) => listPage('prompts/list', request.params?.cursor, renameNamed, ctx) as never);
  server.setRequestHandler('resources/list', (request, ctx) => listPage('resources/list', request.params?.cursor, renameResource, ctx) as never);
  server.setRequestHandler('resources/templates/list', (request, ctx) => listPage('resources/templates/list', request.params?.cursor, renameTemplate, ctx) as never);
}

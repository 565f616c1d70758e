import { isInputRequiredResult, type Client } from '@modelcontextprotocol/client';
import { inputRequired, ProtocolError, ProtocolErrorCode, type Server, type ServerCapabilities, type ServerContext } from '@modelcontextprotocol/server';
import * as z from 'zod';

import type { Logger } from '../../log.js';
import { JSON_RPC_ERRORS, JsonRpcError } from '../json-rpc.js';
import type { McpCaller, McpUpstream } from '../types.js';
import {
  createdTaskOf,
  credentialsFailureOf,
  describeUpstreamFailure,
  isJsonRpcErrorFromUpstream,
  relayJsonRpcError,
  safeErrorText,
  TASKS_EXTENSION,
  type UpstreamConnections,
} from '../upstream-connections.js';
import { decodeListCursor, encodeListCursor, type ListPosition } from './cursor.js';
import { connectState, unwrapRequestState, wrapUpstreamState } from './request-state.js';
import type { UpstreamNaming } from './naming.js';

/** The upstreams one aggregate `Server` instance forwards to, and for whom. */
export interface AggregateScope {
  /** `legacy`: a 2025 session; `modern`: one MCP 2026-07-28 request. */
  readonly era: 'legacy' | 'modern';
  /** The caller as of the request being served. */
  caller(): McpCaller;
  readonly upstreams: UpstreamConnections;
  /** Requests of this scope in flight at each upstream, so its server→client requests ride their streams. */
  readonly inFlight: Map<string, ServerContext[]>;
}

/** Settings of {@link registerAggregateHandlers}. */
export interface AggregateHandlerOptions {
  log: Logger;
  /** How names and URIs are shown and routed back (prefixed on `/mcp`, untouched for one upstream). */
  naming: UpstreamNaming;
  callTimeoutMs: number;
  listTimeoutMs: number;
  /** See `McpEndpointOptions.awaitElicitation`. */
  awaitElicitation?: (elicitationId: string, signal: AbortSignal) => Promise<boolean>;
}

/** The capabilities of the aggregate endpoint: everything it forwards. */
export const AGGREGATE_CAPABILITIES = {
  tools: { listChanged: true },
  prompts: { listChanged: true },
  resources: { subscribe: true, listChanged: true },
  completions: {},
  logging: {},
} as const;

/**
 * {@link AGGREGATE_CAPABILITIES}, with the MCP Tasks extension (SEP-2663 §Capability
 * Negotiation) when `tasks`: an upstream the caller may use offers it.
 */
export function aggregateCapabilities(tasks: boolean): ServerCapabilities {
  return tasks ? ({ ...AGGREGATE_CAPABILITIES, extensions: { [TASKS_EXTENSION]: {} } } as ServerCapabilities) : AGGREGATE_CAPABILITIES;
}

/** Each list method and the key of its items. */
const LIST_KINDS = {
  'tools/list': 'tools',
  'prompts/list': 'prompts',
  'resources/list': 'resources',
  'resources/templates/list': 'resourceTemplates',
} as const;

type ListMethod = keyof typeof LIST_KINDS;
type Item = Record<string, unknown>;

/** Keeps every object as the upstream sent it: the gateway renames, never re-serialises through a narrower schema. */
const RawResult = z.looseObject({});
const RawList = z.looseObject({ nextCursor: z.string().optional() });

const UNKNOWN_CURSOR = 'Invalid cursor: it was not issued by this endpoint for this caller, or it was altered.';

/**
 * Registers on `server` the handlers of the aggregate MCP endpoint: every list merged across the
 * scope's upstreams with names and URIs mapped, every call routed back to the upstream it names.
 * The same handlers serve both eras; where an era needs its own answer (URL elicitation, push vs
 * input-required), `scope.era` says which.
 */
export function registerAggregateHandlers(server: Server, scope: AggregateScope, options: AggregateHandlerOptions): void {
  const { log, naming, callTimeoutMs, listTimeoutMs } = options;

  function upstreamNamed(name: string): McpUpstream | undefined {
    return scope.caller().upstreams.find((upstream) => upstream.name === name);
  }

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
        const upstream = upstreamNamed(name)!;
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

  function namedTarget(kind: 'tool' | 'prompt', name: string): { upstream: McpUpstream; name: string } {
    const target = naming.resolveName(name, scope.caller().upstreams);
    if (!target) {
      const list = kind === 'tool' ? 'tools/list' : 'prompts/list';
      throw new ProtocolError(JSON_RPC_ERRORS.invalidParams, `Unknown ${kind}: ${name}. ${naming.hint(kind)}${list} shows the ${kind}s available to you.`);
    }
    return target;
  }

  function resourceTarget(uri: string): { upstream: McpUpstream; uri: string } {
    const target = naming.resolveUri(uri, scope.caller().upstreams);
    if (!target) throw new ProtocolError(JSON_RPC_ERRORS.invalidParams, `Unknown resource: ${uri}. resources/list and resources/templates/list show the resources available to you.`);
    return target;
  }

  /**
   * Sends `method` to `upstream` with `params`, relaying progress, cancellation and (for the
   * multi-round-trip methods) input-required rounds. Failures become the JSON-RPC error or
   * result the client should see.
   */
  async function forward(
    upstream: McpUpstream,
    method: string,
    params: Record<string, unknown>,
    ctx: ServerContext,
    unavailable: (reason: string) => Item,
    multiRound = false,
    elicited = false,
  ): Promise<Item> {
    const caller = scope.caller();
    const outgoing: Record<string, unknown> = { ...params };
    delete outgoing['_meta'];
    // The answers of `tasks/update` are its payload (SEP-2663), not the retry of a multi-round request.
    if (method !== 'tasks/update') delete outgoing['inputResponses'];
    delete outgoing['requestState'];
    const meta = forwardedMeta(ctx);
    if (meta) outgoing['_meta'] = meta;
    if (multiRound) {
      const wire = ctx.mcpReq.requestState<string>();
      if (wire !== undefined) {
        const state = unwrapRequestState(wire);
        if (!state || state.upstream !== upstream.name) throw new ProtocolError(JSON_RPC_ERRORS.invalidParams, 'Invalid or expired requestState');
        if (state.kind === 'upstream') {
          if (state.state !== undefined) outgoing['requestState'] = state.state;
          outgoing['inputResponses'] = ctx.mcpReq.inputResponses ?? {};
        }
      }
    }
    const progressToken = ctx.mcpReq._meta?.progressToken;
    const active = scope.inFlight.get(upstream.name) ?? [];
    active.push(ctx);
    scope.inFlight.set(upstream.name, active);
    try {
      const result = await scope.upstreams.use(upstream, (client: Client) =>
        client.request({ method, params: outgoing } as never, RawResult, {
          signal: ctx.mcpReq.signal,
          timeout: method === 'tools/call' ? callTimeoutMs : listTimeoutMs,
          resetTimeoutOnProgress: true,
          allowInputRequired: multiRound,
          ...(progressToken !== undefined
            ? { onprogress: (progress) => void ctx.mcpReq.notify({ method: 'notifications/progress', params: { ...progress, progressToken } }).catch(() => undefined) }
            : {}),
        }),
      );
      if (multiRound && isInputRequiredResult(result)) {
        return inputRequired({
          ...(result.inputRequests ? { inputRequests: result.inputRequests } : {}),
          requestState: wrapUpstreamState(upstream.name, result.requestState),
        }) as unknown as Item;
      }
      return result;
    } catch (error) {
      if (ctx.mcpReq.signal.aborted) throw error;
      if (isJsonRpcErrorFromUpstream(error)) throw asProtocolError(relayJsonRpcError(error));
      const credentials = credentialsFailureOf(error);
      if (credentials?.cause instanceof JsonRpcError || credentials?.cause instanceof ProtocolError) {
        return connectFirst(upstream, credentials.cause, ctx, multiRound && !elicited ? 'input-required' : elicited ? 'relay' : 'elicit', () =>
          forward(upstream, method, params, ctx, unavailable, multiRound, true),
        );
      }
      const reason = describeUpstreamFailure(error);
      log.warn(`upstream ${method} failed`, { userId: caller.userId, upstream: upstream.name, reason, error: safeErrorText(error) });
      return unavailable(`Upstream "${upstream.displayName}" (${upstream.name}) is unavailable: ${reason}.`);
    } finally {
      active.splice(active.indexOf(ctx), 1);
      if (active.length === 0 && scope.inFlight.get(upstream.name) === active) scope.inFlight.delete(upstream.name);
    }
  }

  /** The error a client sees for a failed request to `upstream` that is not relayed as a result. */
  function upstreamFailure(upstream: McpUpstream, method: string, error: unknown): ProtocolError {
    if (isJsonRpcErrorFromUpstream(error)) return asProtocolError(relayJsonRpcError(error));
    const cause = credentialsFailureOf(error)?.cause;
    if (cause instanceof JsonRpcError || cause instanceof ProtocolError) return asProtocolError(cause);
    const reason = describeUpstreamFailure(error);
    log.warn(`upstream ${method} failed`, { userId: scope.caller().userId, upstream: upstream.name, reason, error: safeErrorText(error) });
    return new ProtocolError(JSON_RPC_ERRORS.internalError, `Upstream "${upstream.displayName}" (${upstream.name}) is unavailable: ${reason}.`);
  }

  /**
   * `upstreamHeaders` asked the user to connect `upstream` first (a -32042 URL elicitation). The
   * 2025 era relays the error, or asks a client that declared URL elicitation with
   * `elicitation/create` and continues once the user finished; MCP 2026-07-28 has no -32042 on
   * its wire, so a multi-round method answers input-required with a URL elicitation and the
   * client's retry tries the upstream again. `mode` says what this request may still do:
   * answer input-required (a multi-round method), ask once (`elicit`), or only relay the error.
   */
  async function connectFirst(
    upstream: McpUpstream,
    cause: JsonRpcError | ProtocolError,
    ctx: ServerContext,
    mode: 'input-required' | 'elicit' | 'relay',
    retry: () => Promise<Item>,
  ): Promise<Item> {
    const elicitation = urlElicitationOf(cause);
    if (elicitation && scope.era === 'modern' && mode === 'input-required') {
      return inputRequired({
        inputRequests: { [`connect:${upstream.name}`]: inputRequired.elicitUrl({ url: elicitation.url, message: elicitation.message }) },
        requestState: connectState(upstream.name),
      }) as unknown as Item;
    }
    if (elicitation && scope.era === 'legacy' && mode !== 'relay' && options.awaitElicitation && server.getClientCapabilities()?.elicitation?.url) {
      const answer = await ctx.mcpReq.elicitInput({ mode: 'url', ...elicitation }, { signal: ctx.mcpReq.signal, timeout: 10 * 60_000 });
      if (answer.action !== 'accept') throw new ProtocolError(JSON_RPC_ERRORS.invalidRequest, `${upstream.displayName} is not connected: the user did not continue (${answer.action}).`);
      if (await options.awaitElicitation(elicitation.elicitationId, ctx.mcpReq.signal)) return retry();
      throw new ProtocolError(JSON_RPC_ERRORS.invalidRequest, `${upstream.displayName} was not connected in time.`);
    }
    throw asProtocolError(cause);
  }

  server.setRequestHandler('tools/call', async (request, ctx) => {
    // A 2025-11-25 `task` hint is tolerated and dropped: with MCP Tasks (SEP-2663) the upstream
    // alone decides whether a call becomes a task, for clients that declared the extension.
    const { name, task: _hint, ...params } = request.params as { name: string; task?: unknown } & Record<string, unknown>;
    const target = namedTarget('tool', name);
    const failed = (text: string): Item => ({ isError: true, content: [{ type: 'text', text }] });
    try {
      const result = await forward(target.upstream, 'tools/call', { ...params, name: target.name }, ctx, failed, true);
      const created = createdTaskOf(result);
      if (created && typeof created['taskId'] === 'string') return { ...created, taskId: naming.taskId(target.upstream, created['taskId']) } as never;
      return result as never;
    } catch (error) {
      // A declined or timed-out URL elicitation ends the call as a tool error, as before.
      if (error instanceof ProtocolError && error.code === JSON_RPC_ERRORS.invalidRequest) return failed(error.message) as never;
      throw error;
    }
  });

  const unavailableError = (text: string): never => {
    throw new ProtocolError(JSON_RPC_ERRORS.internalError, text);
  };

  server.setRequestHandler('prompts/get', async (request, ctx) => {
    const target = namedTarget('prompt', request.params.name);
    return (await forward(target.upstream, 'prompts/get', { ...request.params, name: target.name }, ctx, unavailableError, true)) as never;
  });

  server.setRequestHandler('resources/read', async (request, ctx) => {
    const target = resourceTarget(request.params.uri);
    const result = await forward(target.upstream, 'resources/read', { ...request.params, uri: target.uri }, ctx, unavailableError, true);
    if (!Array.isArray(result['contents'])) return result as never;
    const contents = (result['contents'] as unknown[]).map((content) =>
      typeof content === 'object' && content !== null && typeof (content as Item)['uri'] === 'string'
        ? { ...(content as Item), uri: naming.uri(target.upstream, (content as { uri: string }).uri) }
        : content,
    );
    return { ...result, contents } as never;
  });

  if (scope.era === 'legacy') {
    for (const method of ['resources/subscribe', 'resources/unsubscribe'] as const) {
      server.setRequestHandler(method, async (request) => {
        const target = resourceTarget(request.params.uri);
        try {
          if (method === 'resources/subscribe') await scope.upstreams.subscribeResource(target.upstream, target.uri);
          else await scope.upstreams.unsubscribeResource(target.upstream, target.uri);
        } catch (error) {
          throw upstreamFailure(target.upstream, method, error);
        }
        return {};
      });
    }
  }

  if (scope.era === 'modern') {
    // MCP Tasks (SEP-2663): each task id names its upstream, so any gateway process can route it.
    const TaskParams = z.looseObject({ taskId: z.string() });
    for (const method of ['tasks/get', 'tasks/update', 'tasks/cancel'] as const) {
      server.setRequestHandler(method, { params: TaskParams }, async (params, ctx) => {
        const declared = (server.getClientCapabilities() as { extensions?: Record<string, unknown> } | undefined)?.extensions?.[TASKS_EXTENSION];
        if (declared === undefined) {
          throw new ProtocolError(ProtocolErrorCode.MissingRequiredClientCapability, 'Missing required client capability', {
            requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } },
          });
        }
        const target = naming.resolveTaskId(params.taskId, scope.caller().upstreams);
        if (!target) throw new ProtocolError(JSON_RPC_ERRORS.invalidParams, `Unknown task: ${params.taskId}`);
        // The SDK lifts `inputResponses` out of every request's params, as it would for a retry.
        const answers = method === 'tasks/update' ? { inputResponses: ctx.mcpReq.inputResponses ?? {} } : {};
        const result = await forward(target.upstream, method, { ...params, ...answers, taskId: target.taskId }, ctx, unavailableError);
        return (typeof result['taskId'] === 'string' ? { ...result, taskId: naming.taskId(target.upstream, result['taskId']) } : result) as never;
      });
    }
  }

  server.setRequestHandler('completion/complete', async (request, ctx) => {
    const { ref } = request.params;
    if (ref.type === 'ref/prompt') {
      const target = namedTarget('prompt', ref.name);
      return (await forward(target.upstream, 'completion/complete', { ...request.params, ref: { ...ref, name: target.name } }, ctx, unavailableError)) as never;
    }
    const target = resourceTarget(ref.uri);
    return (await forward(target.upstream, 'completion/complete', { ...request.params, ref: { ...ref, uri: target.uri } }, ctx, unavailableError)) as never;
  });

  server.setRequestHandler('logging/setLevel', async (request, ctx) => {
    const caller = scope.caller();
    await Promise.all(
      caller.upstreams.map(async (upstream) => {
        try {
          await scope.upstreams.use(upstream, async (client) => {
            if (client.getServerCapabilities()?.logging) await client.setLoggingLevel(request.params.level, { signal: ctx.mcpReq.signal, timeout: listTimeoutMs });
          });
        } catch (error) {
          log.warn('upstream left out of logging/setLevel', { upstream: upstream.name, userId: caller.userId, reason: describeUpstreamFailure(error) });
        }
      }),
    );
    return {};
  });
}

/** The request's own `_meta` for the upstream: the envelope and the progress token are the gateway's to set. */
function forwardedMeta(ctx: ServerContext): Record<string, unknown> | undefined {
  const meta = Object.fromEntries(
    Object.entries(ctx.mcpReq._meta ?? {}).filter(([key]) => key !== 'progressToken' && !key.startsWith('io.modelcontextprotocol/')),
  );
  return Object.keys(meta).length > 0 ? meta : undefined;
}

function asProtocolError(error: JsonRpcError | ProtocolError): ProtocolError {
  return error instanceof ProtocolError ? error : new ProtocolError(error.code, error.message, error.data);
}

/** The URL elicitation a -32042 error asks for, if that is what it is. */
function urlElicitationOf(error: JsonRpcError | ProtocolError): { elicitationId: string; url: string; message: string } | undefined {
  if (error.code !== -32042) return undefined;
  const first = (error.data as { elicitations?: { mode?: string; elicitationId?: string; url?: string; message?: string }[] } | undefined)?.elicitations?.[0];
  if (first?.mode !== 'url' || !first.elicitationId || !first.url) return undefined;
  return { elicitationId: first.elicitationId, url: first.url, message: first.message ?? 'Connect your account to continue.' };
}

import { isInputRequiredResult, type Client } from '@modelcontextprotocol/client';
import { inputRequired, ProtocolError, type Server, type ServerContext } from '@modelcontextprotocol/server';
import * as z from 'zod';

import { JSON_RPC_ERRORS, JsonRpcError } from '../json-rpc.js';
import type { McpUpstream } from '../types.js';
import { credentialsFailureOf, describeUpstreamFailure, isJsonRpcErrorFromUpstream, relayJsonRpcError, safeErrorText } from '../upstream-connections.js';
import { asProtocolError, connectFirst } from './elicitation-relay.js';
import type { AggregateHandlerOptions, AggregateScope } from './handlers.js';
import { unwrapRequestState, wrapUpstreamState } from './request-state.js';

/** A result or list item as the upstream sent it. */
export type Item = Record<string, unknown>;

/** Keeps every object as the upstream sent it: the gateway renames, never re-serialises through a narrower schema. */
const RawResult = z.looseObject({});

/** Routes one aggregate request to the upstream its name, URI or task id names, and back. */
export interface UpstreamForwarder {
  /** The upstream and its own name of the tool or prompt `name`; throws invalid params when none. */
  namedTarget(kind: 'tool' | 'prompt', name: string): { upstream: McpUpstream; name: string };
  /** The upstream and its own URI of the resource `uri`; throws invalid params when none. */
  resourceTarget(uri: string): { upstream: McpUpstream; uri: string };
  /**
   * Sends `method` to `upstream` with `params`, relaying progress, cancellation and (for the
   * multi-round-trip methods) input-required rounds. Failures become the JSON-RPC error or
   * result the client should see; `unavailable` makes the one for an unreachable upstream.
   */
  forward(upstream: McpUpstream, method: string, params: Record<string, unknown>, ctx: ServerContext, unavailable: (reason: string) => Item, multiRound?: boolean): Promise<Item>;
  /** The error a client sees for a failed request to `upstream` that is not relayed as a result. */
  upstreamFailure(upstream: McpUpstream, method: string, error: unknown): ProtocolError;
}

/** Creates the routing of the aggregate handlers registered on `server` for `scope`. */
export function createUpstreamForwarder(server: Server, scope: AggregateScope, options: AggregateHandlerOptions): UpstreamForwarder {
  const { log, naming, callTimeoutMs, listTimeoutMs } = options;

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
        return connectFirst(server, scope, options, upstream, credentials.cause, ctx, multiRound && !elicited ? 'input-required' : elicited ? 'relay' : 'elicit', () =>
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

  return {
    namedTarget(kind, name) {
      const target = naming.resolveName(name, scope.caller().upstreams);
      if (!target) {
        const list = kind === 'tool' ? 'tools/list' : 'prompts/list';
        throw new ProtocolError(JSON_RPC_ERRORS.invalidParams, `Unknown ${kind}: ${name}. ${naming.hint(kind)}${list} shows the ${kind}s available to you.`);
      }
      return target;
    },

    resourceTarget(uri) {
      const target = naming.resolveUri(uri, scope.caller().upstreams);
      if (!target) throw new ProtocolError(JSON_RPC_ERRORS.invalidParams, `Unknown resource: ${uri}. resources/list and resources/templates/list show the resources available to you.`);
      return target;
    },

    forward: (upstream, method, params, ctx, unavailable, multiRound) => forward(upstream, method, params, ctx, unavailable, multiRound),

    upstreamFailure(upstream, method, error) {
      if (isJsonRpcErrorFromUpstream(error)) return asProtocolError(relayJsonRpcError(error));
      const cause = credentialsFailureOf(error)?.cause;
      if (cause instanceof JsonRpcError || cause instanceof ProtocolError) return asProtocolError(cause);
      const reason = describeUpstreamFailure(error);
      log.warn(`upstream ${method} failed`, { userId: scope.caller().userId, upstream: upstream.name, reason, error: safeErrorText(error) });
      return new ProtocolError(JSON_RPC_ERRORS.internalError, `Upstream "${upstream.displayName}" (${upstream.name}) is unavailable: ${reason}.`);
    },
  };
}

/** The request's own `_meta` for the upstream: the envelope and the progress token are the gateway's to set. */
function forwardedMeta(ctx: ServerContext): Record<string, unknown> | undefined {
  const meta = Object.fromEntries(
    Object.entries(ctx.mcpReq._meta ?? {}).filter(([key]) => key !== 'progressToken' && !key.startsWith('io.modelcontextprotocol/')),
  );
  return Object.keys(meta).length > 0 ? meta : undefined;
}

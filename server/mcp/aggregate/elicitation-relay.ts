import { inputRequired, ProtocolError, type Server, type ServerContext } from '@modelcontextprotocol/server';

import { JSON_RPC_ERRORS, type JsonRpcError, urlElicitationOf } from '../json-rpc.js';
import type { McpUpstream } from '../types.js';
import type { AggregateHandlerOptions, AggregateScope } from './handlers.js';
import { connectState } from './request-state.js';

/** What a request that met a URL elicitation may still do; see {@link connectFirst}. */
export type ConnectMode = 'input-required' | 'elicit' | 'relay';

/**
 * `upstreamHeaders` asked the user to connect `upstream` first (a -32042 URL elicitation). The
 * 2025 era relays the error, or asks a client that declared URL elicitation with
 * `elicitation/create` and continues once the user finished; MCP 2026-07-28 has no -32042 on
 * its wire, so a multi-round method answers input-required with a URL elicitation and the
 * client's retry tries the upstream again. `mode` says what this request may still do:
 * answer input-required (a multi-round method), ask once (`elicit`), or only relay the error.
 */
export async function connectFirst<T>(
  server: Server,
  scope: AggregateScope,
  options: AggregateHandlerOptions,
  upstream: McpUpstream,
  cause: JsonRpcError | ProtocolError,
  ctx: ServerContext,
  mode: ConnectMode,
  retry: () => Promise<T>,
): Promise<T> {
  const elicitation = urlElicitationOf(cause);
  if (elicitation && scope.era === 'modern' && mode === 'input-required') {
    return inputRequired({
      inputRequests: { [`connect:${upstream.name}`]: inputRequired.elicitUrl({ url: elicitation.url, message: elicitation.message }) },
      requestState: connectState(upstream.name),
    }) as unknown as T;
  }
  if (elicitation && scope.era === 'legacy' && mode !== 'relay' && options.awaitElicitation && server.getClientCapabilities()?.elicitation?.url) {
    const answer = await ctx.mcpReq.elicitInput({ mode: 'url', ...elicitation }, { signal: ctx.mcpReq.signal, timeout: 10 * 60_000 });
    if (answer.action !== 'accept') throw new ProtocolError(JSON_RPC_ERRORS.invalidRequest, `${upstream.displayName} is not connected: the user did not continue (${answer.action}).`);
    if (await options.awaitElicitation(elicitation.elicitationId, ctx.mcpReq.signal)) return retry();
    throw new ProtocolError(JSON_RPC_ERRORS.invalidRequest, `${upstream.displayName} was not connected in time.`);
  }
  throw asProtocolError(cause);
}

/** `error` as the SDK's `ProtocolError`, code, message and data kept. */
export function asProtocolError(error: JsonRpcError | ProtocolError): ProtocolError {
  return error instanceof ProtocolError ? error : new ProtocolError(error.code, error.message, error.data);
}

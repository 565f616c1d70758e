import type { Server, ServerCapabilities, ServerContext } from '@modelcontextprotocol/server';

import type { Logger } from '../../log.js';
import type { McpCaller } from '../types.js';
import { TASKS_EXTENSION, type UpstreamConnections } from '../upstream-connections.js';
import { registerCallHandlers } from './call-handlers.js';
import { registerListHandlers } from './list-handlers.js';
import type { UpstreamNaming } from './naming.js';
import { registerSubscriptionHandlers } from './subscription-handlers.js';
import { createUpstreamForwarder } from './upstream-forward.js';

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

/**
 * Registers on `server` the handlers of the aggregate MCP endpoint: every list merged across the
 * scope's upstreams with names and URIs mapped, every call routed back to the upstream it names.
 * The same handlers serve both eras; where an era needs its own answer (URL elicitation, push vs
 * input-required), `scope.era` says which.
 */
export function registerAggregateHandlers(server: Server, scope: AggregateScope, options: AggregateHandlerOptions): void {
  const routes = createUpstreamForwarder(server, scope, options);
  registerListHandlers(server, scope, options);
  registerCallHandlers(server, scope, options, routes);
  registerSubscriptionHandlers(server, scope, options, routes);
}

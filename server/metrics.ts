import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AuditKind } from './store/store.js';

/**
 * The gateway's Prometheus metrics, one registry per process (web and worker share it in `npm
 * start`). The hot path touches only pre-resolved children: a counter increment and a histogram
 * observation per request, label values from closed sets.
 */
export const metricsRegistry = new Registry();
collectDefaultMetrics({ register: metricsRegistry });

const latencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

const mcpRequests = new Counter({
  name: 'gateway_mcp_requests_total',
  help: 'Requests to /mcp (endpoint "mcp") and /mcp/<upstream> (endpoint = the upstream), by MCP method and outcome.',
  labelNames: ['endpoint', 'method', 'outcome'] as const,
  registers: [metricsRegistry],
});
const mcpDuration = new Histogram({
  name: 'gateway_mcp_request_duration_seconds',
  help: 'Time from a request reaching an MCP endpoint until its response was handed over (streams: until their headers).',
  labelNames: ['endpoint'] as const,
  buckets: latencyBuckets,
  registers: [metricsRegistry],
});
const upstreamRequests = new Counter({
  name: 'gateway_upstream_requests_total',
  help: 'HTTP requests the gateway sent to upstream MCP servers, by upstream and outcome (status class or "error").',
  labelNames: ['upstream', 'outcome'] as const,
  registers: [metricsRegistry],
});
const upstreamDuration = new Histogram({
  name: 'gateway_upstream_request_duration_seconds',
  help: 'Time until an upstream MCP server answered with its response headers.',
  labelNames: ['upstream'] as const,
  buckets: latencyBuckets,
  registers: [metricsRegistry],
});
const tokenChecks = new Counter({
  name: 'gateway_token_checks_total',
  help: 'Bearer token checks on the MCP endpoints: "ok", or the OAuth error a refusal answered with.',
  labelNames: ['outcome'] as const,
  registers: [metricsRegistry],
});
const consentFlows = new Counter({
  name: 'gateway_consent_flows_total',
  help: 'Consent flows started, approved, approved by a remembered consent, denied and expired.',
  labelNames: ['event'] as const,
  registers: [metricsRegistry],
});
const flowRequestAdmissions = new Counter({
  name: 'gateway_flow_request_admissions_total',
  help: 'Web requests that wait on Temporal (consent steps, connect, My connections), by how their turn came: at_once, after_waiting, queue_full, wait_timeout, client_gone.',
  labelNames: ['outcome'] as const,
  registers: [metricsRegistry],
});
const flowRequestsWaiting = new Gauge({
  name: 'gateway_flow_requests_waiting',
  help: 'Web requests that wait on Temporal waiting for their turn now (temporal.flowRequests.queue bounds them).',
  registers: [metricsRegistry],
});
const refreshWaiting = new Gauge({
  name: 'gateway_upstream_refresh_waiting',
  help: 'MCP requests waiting now for a refresh of the upstream token they need (those that found the same token share one refresh).',
  registers: [metricsRegistry],
});
const upstreamGrants = new Counter({
  name: 'gateway_upstream_grant_events_total',
  help: 'Upstream connections: connected, reconnected, refreshed, refresh_failed, needs_reconnect, disconnected.',
  labelNames: ['upstream', 'event'] as const,
  registers: [metricsRegistry],
});
const auditEntries = new Counter({
  name: 'gateway_audit_entries_total',
  help: 'Audit entries written, by kind.',
  labelNames: ['kind'] as const,
  registers: [metricsRegistry],
});

/** MCP methods named in the labels; anything else a client sends counts as "other". */
const knownMethods = new Set([
  'initialize', 'ping', 'server/discover', 'tools/list', 'tools/call', 'prompts/list', 'prompts/get', 'resources/list',
  'resources/templates/list', 'resources/read', 'resources/subscribe', 'resources/unsubscribe', 'completion/complete',
  'logging/setLevel', 'subscriptions/listen', 'tasks/get', 'tasks/list', 'tasks/result', 'tasks/cancel', 'tasks/update',
  'notifications/initialized', 'notifications/cancelled', 'notifications/progress', 'notifications/roots/list_changed',
]);

/** The label value for an MCP method name (closed set: unknown names would grow the series without bound). */
export function methodLabel(method: string | undefined, httpMethod: string): string {
  if (!method) return httpMethod === 'POST' ? 'unknown' : httpMethod.toLowerCase();
  return knownMethods.has(method) ? method : 'other';
}

/** The JSON-RPC method of a request body, for {@link methodLabel}; a batch counts as its first message. */
export function mcpMethodOf(body: unknown): string | undefined {
  const message = Array.isArray(body) ? (body[0] as unknown) : body;
  const method = typeof message === 'object' && message !== null ? (message as { method?: unknown }).method : undefined;
  return typeof method === 'string' ? method : undefined;
}

/** The outcome label of an HTTP status. */
export function statusOutcome(status: number): string {
  if (status < 300) return 'ok';
  if (status === 401 || status === 403) return 'refused';
  if (status < 500) return 'client_error';
  return 'error';
}

type CounterChild = { inc(): void };
type HistogramChild = { observe(value: number): void };
const mcpChildren = new Map<string, Map<string, Map<string, CounterChild>>>();
const mcpDurationChildren = new Map<string, HistogramChild>();

/** Counts one MCP request and observes its duration. */
export function recordMcpRequest(endpoint: string, method: string, outcome: string, seconds: number): void {
  let byMethod = mcpChildren.get(endpoint);
  if (!byMethod) mcpChildren.set(endpoint, (byMethod = new Map()));
  let byOutcome = byMethod.get(method);
  if (!byOutcome) byMethod.set(method, (byOutcome = new Map()));
  let counter = byOutcome.get(outcome);
  if (!counter) byOutcome.set(outcome, (counter = mcpRequests.labels(endpoint, method, outcome)));
  counter.inc();
  let histogram = mcpDurationChildren.get(endpoint);
  if (!histogram) mcpDurationChildren.set(endpoint, (histogram = mcpDuration.labels(endpoint)));
  histogram.observe(seconds);
}

const upstreamDurationChildren = new Map<string, HistogramChild>();
const upstreamOutcomeChildren = new Map<string, Map<string, CounterChild>>();

/** Counts one request to an upstream (by the status it answered, or `error`) and observes how long it took. */
export function recordUpstreamRequest(upstream: string, status: number | 'error', seconds: number): void {
  const outcome = status === 'error' ? 'error' : status < 300 ? '2xx' : status < 400 ? '3xx' : status < 500 ? '4xx' : '5xx';
  let byOutcome = upstreamOutcomeChildren.get(upstream);
  if (!byOutcome) upstreamOutcomeChildren.set(upstream, (byOutcome = new Map()));
  let counter = byOutcome.get(outcome);
  if (!counter) byOutcome.set(outcome, (counter = upstreamRequests.labels(upstream, outcome)));
  counter.inc();
  let histogram = upstreamDurationChildren.get(upstream);
  if (!histogram) upstreamDurationChildren.set(upstream, (histogram = upstreamDuration.labels(upstream)));
  histogram.observe(seconds);
}

const tokenCheckChildren = new Map<string, CounterChild>();

/** Counts one bearer check: `ok`, or the refusal's OAuth error code. */
export function countTokenCheck(outcome: string): void {
  let counter = tokenCheckChildren.get(outcome);
  if (!counter) tokenCheckChildren.set(outcome, (counter = tokenChecks.labels(outcome)));
  counter.inc();
}

/** Counts a consent flow that started (the other flow events come from the audit trail). */
export function countFlowStarted(): void {
  consentFlows.labels('started').inc();
}

/** How a request that waits on Temporal got its turn, or why it did not (`server/middleware/flow-admission.ts`). */
export type FlowAdmission = 'at_once' | 'after_waiting' | 'queue_full' | 'wait_timeout' | 'client_gone';

/** Counts one admission decision of a request that waits on Temporal. */
export function countFlowAdmission(outcome: FlowAdmission): void {
  flowRequestAdmissions.labels(outcome).inc();
}

/** One more (+1) or one fewer (-1) request waiting for its turn to call Temporal. */
export function countFlowRequestWaiting(change: 1 | -1): void {
  flowRequestsWaiting.inc(change);
}

/** One more (+1) or one fewer (-1) MCP request waiting for a refresh of its upstream token. */
export function countRefreshWaiting(change: 1 | -1): void {
  refreshWaiting.inc(change);
}

/** Counts a refresh of a user's upstream tokens. */
export function countRefresh(upstream: string): void {
  upstreamGrants.labels(upstream, 'refreshed').inc();
}

/** Moves the counters an audit entry stands for: consent outcomes and upstream connection events. */
export function countAudit(kind: AuditKind, upstream: string | null): void {
  auditEntries.labels(kind).inc();
  const [area, event] = kind.split('.') as [string, string];
  if (area === 'consent' && event !== 'revoked') consentFlows.labels(event).inc();
  else if (area === 'upstream' && upstream) upstreamGrants.labels(upstream, event).inc();
}

import { context, INVALID_SPAN_CONTEXT, propagation, SpanKind, SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Context, Next } from 'koa';
import type { OperationsConfig } from './config.js';
import { methodLabel } from './metrics.js';

/**
 * The gateway's tracer. Until {@link startTracing} installs a provider it is OpenTelemetry's no-op
 * tracer, so the spans of the hot path cost a call that returns a non-recording span.
 */
export const tracer = trace.getTracer('consent-gateway');

/** Tracing as installed in this process. */
export interface Tracing {
  /** Where finished spans go; the worker hands it the spans its workflows record. */
  spanProcessor: SpanProcessor;
  resource: Resource;
  /** Flushes what is buffered and stops exporting. */
  shutdown(): Promise<void>;
}

let installed: Tracing | undefined;

/**
 * Installs tracing for this process when `tracing.otlpEndpoint` is set: spans are batched and
 * sent by OTLP over HTTP to `<otlpEndpoint>/v1/traces` (the base-URL rule of the OpenTelemetry
 * exporter specification), trace context travels in W3C `traceparent` headers. Without an endpoint
 * nothing is installed and undefined is returned, and the OpenTelemetry SDK is not even loaded.
 * `spanProcessor` replaces the OTLP export (tests pass an in-memory one). Once per process: later
 * calls return the first installation.
 */
export async function startTracing(tracing: OperationsConfig['tracing'], options: { spanProcessor?: SpanProcessor } = {}): Promise<Tracing | undefined> {
  if (installed) return installed;
  if (!tracing.otlpEndpoint && !options.spanProcessor) return undefined;
  const [{ OTLPTraceExporter }, { Resource }, { BatchSpanProcessor }, { NodeTracerProvider }, { ATTR_SERVICE_NAME }] = await Promise.all([
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/semantic-conventions'),
  ]);
  if (installed) return installed;
  const resource = new Resource({ [ATTR_SERVICE_NAME]: tracing.serviceName });
  const spanProcessor = options.spanProcessor ?? new BatchSpanProcessor(new OTLPTraceExporter({ url: `${tracing.otlpEndpoint}/v1/traces` }));
  const provider = new NodeTracerProvider({ resource, spanProcessors: [spanProcessor] });
  // Registers the AsyncLocalStorage context manager too: without it a span would not be the parent
  // of what its awaited calls start.
  provider.register();
  installed = { spanProcessor, resource, shutdown: () => provider.shutdown() };
  return installed;
}

/** Whether {@link startTracing} installed tracing in this process. */
export function tracingInstalled(): boolean {
  return installed !== undefined;
}

/** The installed tracing's processor and resource for workflow spans; undefined when tracing is off. */
export function workflowSpanSink(): { spanProcessor: SpanProcessor; resource: Resource } | undefined {
  return installed;
}

/** The span {@link inSpan} hands its work while tracing is off. */
const unrecorded = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/**
 * Runs `fn` in a new active span: an error ends the span with status ERROR (the error's type and
 * message recorded, so a thrown message must never hold a secret) and is thrown on.
 */
export function inSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>, kind: SpanKind = SpanKind.INTERNAL): Promise<T> {
  // Tracing off: the work runs as it is, with a span that records nothing.
  if (!installed) return fn(unrecorded);
  return tracer.startActiveSpan(name, { kind, attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (error) {
      failSpan(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}

function failSpan(span: Span, error: unknown): void {
  if (!span.isRecording()) return;
  span.recordException(error instanceof Error ? error : String(error));
  span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
}

/**
 * A client span around one HTTP request to an upstream MCP server, its trace context written into
 * `headers` so an upstream that traces continues the trace. Records the host and port only: an
 * upstream URL may carry a key in its path or query.
 */
export function traceUpstreamRequest<T>(upstream: { name: string; url: string }, method: string, headers: Record<string, unknown>, send: () => Promise<T>, statusOf: (response: T) => number): Promise<T> {
  const url = new URL(upstream.url);
  const attributes: Attributes = {
    'http.request.method': method,
    'server.address': url.hostname,
    'server.port': Number(url.port) || (url.protocol === 'https:' ? 443 : 80),
    'gateway.upstream': upstream.name,
  };
  return inSpan(
    `${method} upstream ${upstream.name}`,
    attributes,
    async (span) => {
      propagation.inject(context.active(), headers);
      const response = await send();
      const status = statusOf(response);
      span.setAttribute('http.response.status_code', status);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      return response;
    },
    SpanKind.CLIENT,
  );
}

/**
 * Koa middleware: one server span per request, continuing a caller's W3C trace context, named by
 * method and route template (`/mcp/{upstream}` for the one-upstream endpoints; MCP requests also by
 * their method, from the closed set of the metrics' labels). Never records the
 * path's values or the query: codes, states and interaction ids travel there. When tracing is off
 * it only calls `next`.
 */
export function traceRequests(options: { mcpUpstreams: readonly string[] }) {
  const upstreams = new Set(options.mcpUpstreams);
  return async function traceRequest(ctx: Context, next: Next): Promise<void> {
    if (!installed) return next();
    const parent = propagation.extract(context.active(), ctx.headers);
    const span = tracer.startSpan(ctx.method, { kind: SpanKind.SERVER, attributes: { 'http.request.method': ctx.method } }, parent);
    try {
      await context.with(trace.setSpan(parent, span), next);
    } catch (error) {
      failSpan(span, error);
      throw error;
    } finally {
      const route = routeOf(ctx, upstreams);
      if (route) {
        span.updateName(`${ctx.method} ${route}`);
        span.setAttribute('http.route', route);
      }
      if (route?.startsWith('/mcp')) span.setAttribute('mcp.method.name', methodLabel(ctx.get('mcp-method') || (ctx.state as { mcpMethod?: string }).mcpMethod, ctx.method));
      span.setAttribute('http.response.status_code', ctx.status);
      if (ctx.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    }
  };
}

/** The route template of a request; undefined when only its literal path is known. */
function routeOf(ctx: Context, mcpUpstreams: Set<string>): string | undefined {
  if (ctx.path === '/mcp') return '/mcp';
  if (ctx.path.startsWith('/mcp/')) return mcpUpstreams.has(ctx.path.slice('/mcp/'.length)) ? '/mcp/{upstream}' : undefined;
  const matched = (ctx as { _matchedRoute?: unknown })._matchedRoute;
  return typeof matched === 'string' ? matched : undefined;
}

import { NativeConnection, Runtime, Worker, makeTelemetryFilterString, type WorkerOptions } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../../activities/index.js';
import type { GatewayConfig } from '../config.js';
import { temporalConnectionOptions } from './client.js';
import { upstreamRedirectUri } from '../upstream-config.js';
import { discoveredUrlFetch } from '../net/address-guard.js';
import { ensureWorkflowBundle } from './workflow-bundle.js';
import { createAuditLog, stdoutLine } from '../audit/audit-log.js';
import { createLogger } from '../log.js';
import { countRefresh } from '../metrics.js';
import type { AuditTrail } from '../store/store.js';
import { workflowSpanSink } from '../tracing.js';

let runtimeInstalled = false;

/** Keeps the SDK's own logs at warning level and above, so a normal run stays quiet. */
function installRuntime(metricsAddress: string | undefined): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    Runtime.install({
      logger: new (class {
        log() {}
        trace() {}
        debug() {}
        info() {}
        warn(message: string, meta?: Record<string, unknown>) {
          console.warn(`temporal worker: ${message}`, meta ?? '');
        }
        error(message: string, meta?: Record<string, unknown>) {
          console.error(`temporal worker: ${message}`, meta ?? '');
        }
      })(),
      telemetryOptions: {
        logging: { filter: makeTelemetryFilterString({ core: 'WARN' }) },
        // The SDK's own worker metrics (task slots, latencies, polls), scraped apart from /metrics.
        ...(metricsAddress ? { metrics: { prometheus: { bindAddress: metricsAddress, countersTotalSuffix: true, useSecondsForDurations: true } } } : {}),
      },
    });
  } catch {
    // Already installed by the host process (tests); keep theirs.
  }
}

/**
 * Activity spans, and the sink the traced bundle's workflow interceptor hands its workflow spans to;
 * loaded only when tracing is on.
 */
async function workerTracing(spans: NonNullable<ReturnType<typeof workflowSpanSink>>): Promise<Pick<WorkerOptions, 'sinks' | 'interceptors'>> {
  const { OpenTelemetryActivityInboundInterceptor, OpenTelemetryActivityOutboundInterceptor, makeWorkflowExporter } = await import('@temporalio/interceptors-opentelemetry');
  return {
    sinks: { exporter: makeWorkflowExporter(spans.spanProcessor, spans.resource) },
    interceptors: {
      activity: [(ctx) => ({ inbound: new OpenTelemetryActivityInboundInterceptor(ctx), outbound: new OpenTelemetryActivityOutboundInterceptor(ctx) })],
    },
  };
}

/** Creates the worker for the gateway's task queue, running the prebuilt workflow bundle. */
export async function createWorker(
  config: GatewayConfig,
  deps: Pick<ActivityDeps, 'cipher'> & { store: ActivityDeps['store'] & AuditTrail },
): Promise<{ worker: Worker; connection: NativeConnection }> {
  installRuntime(config.operations.temporalMetricsAddress);
  // With tracing off the bundle holds no tracing interceptor and the activities run none either.
  const workflowSpans = workflowSpanSink();
  const bundle = await ensureWorkflowBundle({ tracing: workflowSpans !== undefined });
  const tracingOptions = workflowSpans && (await workerTracing(workflowSpans));
  const connection = await NativeConnection.connect(await temporalConnectionOptions(config.temporal));
  try {
    const worker = await Worker.create({
      connection,
      namespace: config.temporal.namespace,
      taskQueue: config.temporal.taskQueue,
      workflowBundle: { codePath: bundle.codePath },
      ...tracingOptions,
      activities: createActivities({
        ...deps,
        upstreams: config.upstreams,
        redirectUri: upstreamRedirectUri(config),
        discoveredFetch: discoveredUrlFetch(),
        observers: {
          audit: createAuditLog({ store: deps.store, log: createLogger(config.logLevel), stdout: config.operations.auditStdout ? stdoutLine : undefined }),
          refreshed: countRefresh,
        },
      }),
      maxConcurrentActivityTaskExecutions: config.temporal.worker.maxConcurrentActivities,
      maxConcurrentWorkflowTaskExecutions: config.temporal.worker.maxConcurrentWorkflowTasks,
      maxCachedWorkflows: config.temporal.worker.maxCachedWorkflows,
      // Activities still running when it ends are cancelled and retried by another worker.
      shutdownGraceTime: config.temporal.worker.shutdownGraceMs,
    });
    return { worker, connection };
  } catch (error) {
    await connection.close();
    throw error;
  }
}

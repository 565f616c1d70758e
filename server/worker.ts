import { NativeConnection, Runtime, Worker, makeTelemetryFilterString } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities/index.js';
import type { GatewayConfig } from './config.js';
import { temporalConnectionOptions } from './temporal.js';
import { upstreamRedirectUri } from './upstream-config.js';
import { ensureWorkflowBundle } from './workflow-bundle.js';

let runtimeInstalled = false;

/** Keeps the SDK's own logs at warning level and above, so a normal run stays quiet. */
function installRuntime(): void {
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
      telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'WARN' }) } },
    });
  } catch {
    // Already installed by the host process (tests); keep theirs.
  }
}

/** Creates the worker for the gateway's task queue, running the prebuilt workflow bundle. */
export async function createWorker(config: GatewayConfig, deps: Pick<ActivityDeps, 'store' | 'cipher'>): Promise<{ worker: Worker; connection: NativeConnection }> {
  installRuntime();
  const bundle = await ensureWorkflowBundle();
  const connection = await NativeConnection.connect(await temporalConnectionOptions(config.temporal));
  try {
    const worker = await Worker.create({
      connection,
      namespace: config.temporal.namespace,
      taskQueue: config.temporal.taskQueue,
      workflowBundle: { codePath: bundle.codePath },
      activities: createActivities({ ...deps, upstreams: config.upstreams, redirectUri: upstreamRedirectUri(config) }),
      maxConcurrentActivityTaskExecutions: config.temporal.worker.maxConcurrentActivities,
      maxConcurrentWorkflowTaskExecutions: config.temporal.worker.maxConcurrentWorkflowTasks,
      // Activities still running when it ends are cancelled and retried by another worker.
      shutdownGraceTime: config.temporal.worker.shutdownGraceMs,
    });
    return { worker, connection };
  } catch (error) {
    await connection.close();
    throw error;
  }
}

import { ConfigError, loadConfig } from './config.js';
import { checkFleetKeys } from './crypto/key-check.js';
import { loadCipher } from './crypto/keys.js';
import { loadServerKeys } from './oauth/server-keys.js';
import { createLogger } from './log.js';
import { openStore } from './store/open-store.js';
import { startTracing } from './tracing.js';
import { createWorker } from './temporal/worker.js';
import { startMetricsServer } from './routes/metrics.js';

/**
 * Runs only the worker, against the Temporal named by `TEMPORAL_ADDRESS` (or the config file).
 * For deployments that scale workers apart from the web server.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  if (config.temporal.embedded) {
    throw new ConfigError('the worker alone needs a Temporal address: set TEMPORAL_ADDRESS or temporal.address');
  }
  const tracing = await startTracing(config.operations.tracing);
  const store = await openStore(config.store);
  const cipher = await loadCipher(config, log);
  await checkFleetKeys(store, { cipher, keys: await loadServerKeys(config, log) }, log);
  const { worker, connection } = await createWorker(config, { store, cipher });
  // A worker serves no app: its counters (refreshes, expiries, needs-reconnect) need the metrics port.
  const metrics = config.operations.metricsPort === undefined ? undefined : await startMetricsServer(config.http.host, config.operations.metricsPort);
  // The worker stops polling, lets running activities finish within temporal.worker.shutdownGraceTime, then exits.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => worker.shutdown());
  log.info('worker running', { taskQueue: config.temporal.taskQueue, address: config.temporal.address, pid: process.pid });
  try {
    await worker.run();
  } finally {
    metrics?.close();
    await connection.close();
    await store.close();
    await tracing?.shutdown();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}\n`);
  process.exit(1);
});

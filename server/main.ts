import type { Server } from 'node:http';
import { ConfigError, loadConfig, type GatewayConfig } from './config.js';
import { checkFleetKeys } from './crypto/key-check.js';
import { loadCipher } from './crypto/keys.js';
import { startDemoUpstream } from './demo/demo-upstream.js';
import { startEmbeddedTemporal } from './temporal/embedded.js';
import { createGateway } from './gateway.js';
import { createLogger, type Logger } from './log.js';
import { loadServerKeys } from './oauth/server-keys.js';
import { openStore } from './store/open-store.js';
import { connectClient, temporalHealthCheck } from './temporal/client.js';
import type { DevServer } from './temporal/dev-server.js';
import { startTracing } from './tracing.js';
import { createWorker } from './temporal/worker.js';

type Cleanup = () => Promise<void>;

const duplicateSignalMs = 1_000;

/** Runs the whole gateway in one process: embedded Temporal (by default), worker and web server. */
async function main(): Promise<void> {
  let config: GatewayConfig;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`Configuration error: ${error.message}\n`);
      process.exit(78);
    }
    throw error;
  }
  // A reader of our output that went away (a log collector restarted, a closed terminal) must not
  // end the process half way through its clean stop, leaving the Temporal dev server behind.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
  const log = createLogger(config.logLevel);
  const started = Date.now();
  const cleanups: Cleanup[] = [];
  let stopping = false;

  const shutdown = async (reason: string, code: number) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { reason });
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((error: unknown) => log.warn('cleanup failed', { error: String(error) }));
    }
    log.info('stopped');
    process.exit(code);
  };
  let firstSignalAt = 0;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) {
        // Under `npm start` one Ctrl-C arrives twice, from the terminal and passed on by npm: only
        // a signal sent later is someone asking to skip the clean stop.
        if (Date.now() - firstSignalAt < duplicateSignalMs) return;
        process.stderr.write('forced exit\n');
        process.exit(130);
      }
      firstSignalAt = Date.now();
      void shutdown(signal, 0);
    });
  }

  try {
    await run(config, log, cleanups, started);
  } catch (error) {
    log.error('could not start', { error: error instanceof Error ? error.message : String(error) });
    await shutdown('start failed', 1);
  }
}

async function run(config: GatewayConfig, log: Logger, cleanups: Cleanup[], started: number): Promise<void> {
  // First in, so last out: the spans of everything stopping after it are still sent.
  const tracing = await startTracing(config.operations.tracing);
  if (tracing) cleanups.push(() => tracing.shutdown());
  let devServer: DevServer | undefined;
  if (config.temporal.embedded) {
    devServer = await startEmbeddedTemporal(config, log);
    cleanups.push(() => devServer!.stop());
    config.temporal.address = devServer.address;
    config.temporal.namespace = devServer.namespace;
  }

  const store = await openStore(config.store);
  cleanups.push(() => store.close());

  const client = await connectClient(config.temporal);
  cleanups.push(() => client.connection.close());

  const cipher = await loadCipher(config, log);
  const keys = await loadServerKeys(config, log);
  await checkFleetKeys(store, { cipher, keys }, log);
  const { worker, connection } = await createWorker(config, { store, cipher });
  const running = worker.run();
  cleanups.push(async () => {
    if (worker.getState() === 'RUNNING') worker.shutdown();
    await running.catch(() => {});
    await connection.close();
  });
  running.catch((error: unknown) => log.error('worker stopped', { error: String(error) }));

  if (config.demoUpstream) {
    const demo = await startDemoUpstream({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => demo.close());
    config.upstreams.push({ name: 'demo', displayName: 'Demo tools', mcpUrl: demo.url, auth: { type: 'none' }, scopes: [] });
  }

  const gateway = await createGateway(config, {
    log,
    store,
    cipher,
    keys,
    temporal: client,
    temporalUiUrl: devServer?.uiUrl,
    workerState: () => worker.getState(),
    temporalHealth: temporalHealthCheck(client, config.temporal.namespace, config.temporal.address),
  });
  cleanups.push(() => gateway.close());
  const server: Server = await gateway.listen(config.http.port, config.http.host);
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );

  const lines = [
    `Consent Gateway is ready (${((Date.now() - started) / 1000).toFixed(1)} s)`,
    `  App:              ${config.http.publicUrl}/`,
    `  MCP endpoint:     ${config.http.publicUrl}/mcp`,
    `  Health:           ${config.http.publicUrl}/healthz`,
    devServer?.uiUrl ? `  Temporal Web UI:  ${devServer.uiUrl}/namespaces/${config.temporal.namespace}/workflows` : `  Temporal:         ${config.temporal.address} (namespace ${config.temporal.namespace})`,
    `  Data:             ${config.dataDir}`,
    config.identity.mode === 'dev' ? '  Identity mode is "dev": anyone at this machine can sign in as anyone. For development only.' : '',
  ];
  process.stdout.write(`\n${lines.filter(Boolean).join('\n')}\n\n`);
}

await main();

import type { Server } from 'node:http';
import { ConfigError, loadConfig } from './config.js';
import { checkFleetKeys } from './crypto/key-check.js';
import { loadCipher } from './crypto/keys.js';
import { createGateway } from './gateway.js';
import { createLogger } from './log.js';
import { loadServerKeys } from './oauth/server-keys.js';
import { openStore } from './store/open-store.js';
import { connectClient, temporalHealthCheck } from './temporal/client.js';
import { startTracing } from './tracing.js';

/**
 * Runs only the web server (OAuth server, consent screens, `/mcp`), against the Temporal named by
 * `TEMPORAL_ADDRESS` and the store named by `GATEWAY_STORE_URL` (or the config file). Any number
 * run side by side behind a load balancer, with workers (`server/worker-main.ts`) apart.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  if (config.temporal.embedded) {
    throw new ConfigError('the web server alone needs a Temporal address: set TEMPORAL_ADDRESS or temporal.address');
  }
  const tracing = await startTracing(config.operations.tracing);
  const store = await openStore(config.store);
  const client = await connectClient(config.temporal);
  const cipher = await loadCipher(config, log);
  const keys = await loadServerKeys(config, log);
  await checkFleetKeys(store, { cipher, keys }, log);
  const gateway = await createGateway(config, {
    log,
    store,
    cipher,
    keys,
    temporal: client,
    temporalHealth: temporalHealthCheck(client, config.temporal.namespace, config.temporal.address),
  });
  const server: Server = await gateway.listen(config.http.port, config.http.host);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    // Requests under way finish; open MCP streams end with the endpoint.
    await Promise.all([new Promise((resolve) => server.close(resolve)), gateway.close()]);
    server.closeAllConnections();
    await client.connection.close();
    await store.close();
    await tracing?.shutdown();
    process.exit(0);
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void stop());
  log.info('web server running', { url: config.http.publicUrl, listen: `${config.http.host}:${config.http.port}`, pid: process.pid });
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}\n`);
  process.exit(1);
});

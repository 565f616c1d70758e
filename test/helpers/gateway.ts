import type { Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import { inject } from 'vitest';
import { loadConfig, type GatewayConfig } from '../../server/config.js';
import { loadCipher } from '../../server/crypto/keys.js';
import { createGateway, type Gateway } from '../../server/gateway.js';
import { createLogger } from '../../server/log.js';
import { openStore } from '../../server/store/open-store.js';
import type { GatewayStore } from '../../server/store/store.js';
import { temporalClientInterceptors, temporalHealthCheck } from '../../server/temporal/client.js';
import { createWorker } from '../../server/temporal/worker.js';
import { freePort } from './free-port.js';
import { createTestDatabase } from './postgres.js';

/**
 * The store behind every {@link startTestGateway}: `GATEWAY_TEST_STORE=postgres` gives each
 * gateway a fresh database on the run's PostgreSQL server; otherwise a SQLite file in its data folder.
 */
export const testStoreBackend = ((value) => {
  if (value !== 'sqlite' && value !== 'postgres') throw new Error(`GATEWAY_TEST_STORE must be sqlite or postgres (got "${value}")`);
  return value;
})(process.env.GATEWAY_TEST_STORE ?? 'sqlite');

/** A whole gateway on loopback: real OAuth server, store, worker and app on the run's dev server. */
export interface TestGateway {
  url: string;
  config: GatewayConfig;
  store: GatewayStore;
  temporal: Client;
  gateway: Gateway;
  /** Log lines written so far (tests check that no secret reaches them). */
  logs: string[];
  close(): Promise<void>;
}

/** Starts a {@link TestGateway}; `configure` adjusts the config (upstreams, clients, TTLs) before start. */
export async function startTestGateway(configure: (config: GatewayConfig) => void = () => {}, options: { worker?: boolean } = {}): Promise<TestGateway> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cg-gateway-'));
  const port = await freePort();
  const config = loadConfig({
    env: {
      GATEWAY_DATA_DIR: dir,
      GATEWAY_PORT: String(port),
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      TEMPORAL_NAMESPACE: inject(testStoreBackend === 'postgres' ? 'temporalPostgresNamespace' : 'temporalNamespace'),
      TEMPORAL_TASK_QUEUE: `gateway-${randomUUID()}`,
      ...(testStoreBackend === 'postgres' ? { GATEWAY_STORE_URL: await createTestDatabase() } : {}),
    },
  });
  // A test machine can be loaded far beyond any production one (the whole suite beside other work
  // on two cores): the bound on a request's Temporal calls is raised so that a slow worker is not
  // taken for an unreachable Temporal. The outage tests set their own short bound.
  config.temporal.requestTimeoutMs = 30_000;
  configure(config);
  const logs: string[] = [];
  const log = createLogger('debug', (line) => logs.push(line));
  const store = await openStore(config.store);
  const cipher = await loadCipher(config, log);
  const connection = await Connection.connect({ address: config.temporal.address });
  const temporal = new Client({ connection, namespace: config.temporal.namespace, interceptors: await temporalClientInterceptors() });
  // Without a worker here, tests run workers as processes of their own (to kill them).
  const { worker, connection: workerConnection }: { worker: Worker | undefined; connection: { close(): Promise<void> } } =
    options.worker === false ? { worker: undefined, connection: { close: async () => {} } } : await createWorker(config, { store, cipher });
  const running = worker?.run() ?? Promise.resolve();
  const gateway = await createGateway(config, {
    store,
    cipher,
    temporal,
    log,
    temporalHealth: temporalHealthCheck(temporal, config.temporal.namespace, config.temporal.address),
  });
  const server: Server = await gateway.listen(port, '127.0.0.1');
  return {
    url: config.http.publicUrl,
    config,
    store,
    temporal,
    gateway,
    logs,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await gateway.close();
      worker?.shutdown();
      await running.catch(() => {});
      await workerConnection.close();
      await connection.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

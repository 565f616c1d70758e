import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime, Worker, makeTelemetryFilterString } from '@temporalio/worker';
import { inject } from 'vitest';
import { createActivities, type ActivityDeps } from '../../activities/index.js';
import { TokenCipher } from '../../server/crypto/token-cipher.js';
import { SqliteStore } from '../../server/store/sqlite-store.js';
import { ensureWorkflowBundle } from '../../server/temporal/workflow-bundle.js';

/** Why Temporal-backed tests cannot run here ('' when they can); use with `describe.skipIf`. */
export const temporalUnavailable = inject('temporalUnavailable');

if (temporalUnavailable) {
  console.warn(`\n!!! Temporal-backed tests in this file are SKIPPED: ${temporalUnavailable}\n`);
}

let runtimeInstalled = false;

function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({
    logger: new (class {
      log() {}
      trace() {}
      debug() {}
      info() {}
      warn() {}
      error(message: string, meta?: unknown) {
        console.error(message, meta ?? '');
      }
    })(),
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }) } },
  });
}

/** A client, a worker on a fresh task queue and a fresh SQLite store, all on the run's dev server. */
export interface TemporalTestEnv {
  address: string;
  namespace: string;
  taskQueue: string;
  client: Client;
  store: SqliteStore;
  storePath: string;
  dir: string;
  /**
   * Creates (but does not run) a worker for this env's task queue with the prebuilt bundle; the
   * activities get no upstreams and a random key unless `deps` names them. `only` makes a worker
   * of workflow tasks or of activity tasks alone.
   */
  createWorker(deps?: Partial<Omit<ActivityDeps, 'store'>>, options?: { only?: 'workflows' | 'activities' }): Promise<Worker>;
  close(): Promise<void>;
}

/** Opens a {@link TemporalTestEnv}. */
export async function openTemporalTestEnv(): Promise<TemporalTestEnv> {
  quietRuntime();
  const address = inject('temporalAddress');
  const namespace = inject('temporalNamespace');
  const dir = await mkdtemp(path.join(tmpdir(), 'cg-test-'));
  const storePath = path.join(dir, 'gateway.sqlite');
  const store = await SqliteStore.open(storePath);
  const connection = await Connection.connect({ address });
  const client = new Client({ connection, namespace });
  const nativeConnections: NativeConnection[] = [];
  const taskQueue = `test-${randomUUID()}`;
  return {
    address,
    namespace,
    taskQueue,
    client,
    store,
    storePath,
    dir,
    async createWorker(deps = {}, options = {}) {
      const bundle = await ensureWorkflowBundle();
      const nativeConnection = await NativeConnection.connect({ address });
      nativeConnections.push(nativeConnection);
      return Worker.create({
        connection: nativeConnection,
        namespace,
        taskQueue,
        ...(options.only === 'activities' ? {} : { workflowBundle: { codePath: bundle.codePath } }),
        ...(options.only === 'workflows'
          ? {}
          : {
              activities: createActivities({
                store,
                cipher: new TokenCipher(randomBytes(32)),
                upstreams: [],
                redirectUri: 'http://localhost/oauth/upstream/callback',
                ...deps,
              }),
            }),
      });
    },
    async close() {
      await Promise.all(nativeConnections.map((c) => c.close()));
      await connection.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

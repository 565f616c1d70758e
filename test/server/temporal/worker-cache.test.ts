import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { loadConfig } from '../../../server/config.js';
import { loadCipher } from '../../../server/crypto/keys.js';
import { createLogger } from '../../../server/log.js';
import { openStore } from '../../../server/store/open-store.js';
import { createWorker } from '../../../server/temporal/worker.js';
import { authorizationUrl, ConsentDriver, createPkce, postForm, registerClient } from '../../helpers/consent-driver.js';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { temporalUnavailable } from '../../helpers/temporal.js';

const skip = Boolean(temporalUnavailable);
const redirectUri = 'http://127.0.0.1:9/callback';

describe('temporal.worker.maxCachedWorkflows', () => {
  it('is 50 unless set, and is read from the file and from the environment (which wins)', async () => {
    expect(loadConfig({ env: {} }).temporal.worker.maxCachedWorkflows).toBe(50);
    const dir = await mkdtemp(path.join(tmpdir(), 'cg-worker-cache-'));
    const file = path.join(dir, 'gateway.yml');
    await writeFile(file, 'temporal:\n  worker:\n    maxCachedWorkflows: 250\n');
    try {
      expect(loadConfig({ env: {}, file }).temporal.worker.maxCachedWorkflows).toBe(250);
      expect(loadConfig({ env: { TEMPORAL_WORKER_MAX_CACHED_WORKFLOWS: '120' }, file }).temporal.worker.maxCachedWorkflows).toBe(120);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a value that is not a whole number of at least 1', () => {
    for (const value of ['0', '-3', '2.5', 'many']) {
      expect(() => loadConfig({ env: { TEMPORAL_WORKER_MAX_CACHED_WORKFLOWS: value } })).toThrow('temporal.worker.maxCachedWorkflows must be a whole number, at least 1');
    }
  });

  it.skipIf(skip)('bounds the worker’s workflow cache', { timeout: 120_000 }, async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cg-worker-cache-'));
    const config = loadConfig({
      env: {
        GATEWAY_DATA_DIR: dir,
        TEMPORAL_ADDRESS: inject('temporalAddress'),
        TEMPORAL_NAMESPACE: inject('temporalNamespace'),
        TEMPORAL_TASK_QUEUE: `worker-cache-${randomUUID()}`,
        TEMPORAL_WORKER_MAX_CACHED_WORKFLOWS: '7',
      },
    });
    const store = await openStore(config.store);
    try {
      const cipher = await loadCipher(config, createLogger('error', () => {}));
      const { worker, connection } = await createWorker(config, { store, cipher });
      const running = worker.run();
      try {
        expect(worker.options.maxCachedWorkflows).toBe(7);
      } finally {
        worker.shutdown();
        await running;
        await connection.close();
      }
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(skip)('consent flows on a worker that keeps two workflows cached', () => {
  let gateway: TestGateway;
  let clientId: string;

  beforeAll(async () => {
    gateway = await startTestGateway((config) => {
      config.temporal.worker.maxCachedWorkflows = 2;
      config.temporal.worker.maxConcurrentWorkflowTasks = 2;
    });
    clientId = await registerClient(gateway.url, [redirectUri]);
  }, 120_000);
  afterAll(async () => gateway?.close(), 60_000);

  it('ends every one of six interleaved flows with a code and a token (evicted flows replay at their next step)', { timeout: 300_000 }, async () => {
    const flows = await Promise.all(
      Array.from({ length: 6 }, async (_, index) => {
        const driver = new ConsentDriver(gateway.url);
        const pkce = createPkce();
        const { uid } = await driver.start(authorizationUrl(gateway.url, { clientId, redirectUri, pkce, state: `cached-${index}` }));
        return { driver, pkce, uid, user: `cached-${index}-${randomUUID()}` };
      }),
    );
    // Each step of each flow in turn: with six flows open and room for two, every step finds its workflow evicted.
    const offered = new Map<string, string[]>();
    for (const flow of flows) {
      const identity = await flow.driver.post(flow.uid, 'identity', { userId: flow.user });
      expect(identity.status, JSON.stringify(identity.body)).toBe(200);
      offered.set(flow.uid, identity.body.upstreams.map((upstream) => upstream.name));
    }
    for (const flow of flows) {
      const services = await flow.driver.post(flow.uid, 'services', { upstreams: offered.get(flow.uid) });
      expect(services.status, JSON.stringify(services.body)).toBe(200);
      expect(services.body.redirectTo ?? null).toBeNull();
    }
    for (const flow of flows) {
      const decided = await flow.driver.post(flow.uid, 'decision', { decision: 'approve' });
      expect(decided.status, JSON.stringify(decided.body)).toBe(200);
      const back = await flow.driver.followToClient(decided.body.redirectTo ?? '');
      const code = back.searchParams.get('code');
      expect(code, back.search).toBeTruthy();
      const token = await postForm(gateway.url, '/token', { grant_type: 'authorization_code', code: code ?? '', redirect_uri: redirectUri, client_id: clientId, code_verifier: flow.pkce.verifier });
      expect(token.body.access_token, JSON.stringify(token.body)).toBeTruthy();
    }
  });
});

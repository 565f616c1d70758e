import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { projectDir } from '../../server/paths.js';
import { startConsentFlow } from '../../server/temporal/client.js';
import { freePort } from '../helpers/free-port.js';
import { temporalUnavailable } from '../helpers/temporal.js';

/**
 * The Temporal SDK's Runtime (and so its Prometheus exporter) is installed once per process: the
 * worker runs as `npm run worker` does, in a process of its own.
 */
describe.skipIf(temporalUnavailable)("the Temporal worker's own metrics exporter (metrics.temporalAddress)", () => {
  const taskQueue = `worker-metrics-${randomUUID()}`;
  let dir: string;
  let metricsUrl: string;
  let child: ChildProcess;
  let exited: Promise<number | null>;
  let output = '';
  let client: Client;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-worker-metrics-'));
    const port = await freePort();
    metricsUrl = `http://127.0.0.1:${port}/metrics`;
    child = spawn(process.execPath, ['--import', 'tsx', 'server/worker-main.ts'], {
      cwd: projectDir,
      env: {
        ...process.env,
        GATEWAY_CONFIG: '',
        GATEWAY_DATA_DIR: dir,
        TEMPORAL_ADDRESS: inject('temporalAddress'),
        TEMPORAL_NAMESPACE: inject('temporalNamespace'),
        TEMPORAL_TASK_QUEUE: taskQueue,
        GATEWAY_TEMPORAL_METRICS_ADDRESS: `127.0.0.1:${port}`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    exited = new Promise((resolve) => child.once('exit', resolve));
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('worker running')) resolve();
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      void exited.then((code) => reject(new Error(`the worker exited (${code}) before it ran:\n${output}`)));
    });
    const connection = await Connection.connect({ address: inject('temporalAddress') });
    client = new Client({ connection, namespace: inject('temporalNamespace') });
  });

  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    await client?.connection.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("serves the SDK's worker metrics in Prometheus text, moving with the workflow tasks it runs", async () => {
    const workflowTasks = new RegExp(`^temporal_workflow_task_execution_latency_count\\{[^}]*task_queue="${taskQueue}"[^}]*workflow_type="consentFlow"[^}]*\\} ([0-9]+)$`, 'm');
    const idle = await fetch(metricsUrl);
    expect(idle.status).toBe(200);
    expect(await idle.text()).not.toMatch(workflowTasks);
    const handle = await startConsentFlow(client, taskQueue, {
      flowId: randomUUID(),
      client: { clientId: 'worker-metrics-client', clientName: 'Worker metrics', redirectHost: 'localhost:9999', registration: 'dcr' },
      upstreams: [],
      scopes: ['mcp:tools'],
      ttlMs: 60_000,
    });
    try {
      let text = '';
      // The first workflow task runs as soon as the worker polls it; the exporter shows it from then on.
      await expect
        .poll(async () => {
          const response = await fetch(metricsUrl);
          expect(response.status).toBe(200);
          text = await response.text();
          return Number(workflowTasks.exec(text)?.[1] ?? 0);
        }, { timeout: 30_000 })
        .toBeGreaterThanOrEqual(1);
      expect(text).toMatch(new RegExp(`^temporal_worker_task_slots_available\\{[^}]*task_queue="${taskQueue}"[^}]*\\} [0-9]+$`, 'm'));
      expect(text).toMatch(/^# TYPE temporal_workflow_task_execution_latency histogram$/m);
    } finally {
      await handle.terminate('test over');
    }
  });
});

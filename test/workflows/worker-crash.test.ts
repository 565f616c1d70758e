import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectDir } from '../../server/paths.js';
import { startConsentFlow } from '../../server/temporal/client.js';
import { chooseIdentity, chooseServices, decide } from '../../workflows/consent-flow/messages.js';
import { openTemporalTestEnv, temporalUnavailable, type TemporalTestEnv } from '../helpers/temporal.js';

/** Starts `server/worker-main.ts` as its own process and resolves once it polls. */
function startWorkerProcess(env: TemporalTestEnv): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/worker-main.ts'], {
    cwd: projectDir,
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: env.address,
      TEMPORAL_NAMESPACE: env.namespace,
      TEMPORAL_TASK_QUEUE: env.taskQueue,
      GATEWAY_DATA_DIR: env.dir,
      GATEWAY_STORE_PATH: env.storePath,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('worker running')) resolve({ child, output: () => output });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`worker exited early (code ${code}):\n${output}`)));
    setTimeout(() => reject(new Error(`worker did not start in time:\n${output}`)), 30_000);
  });
}

describe.skipIf(temporalUnavailable)('a worker killed mid-flow', () => {
  let env: TemporalTestEnv;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    env = await openTemporalTestEnv();
  });

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await env?.close();
  });

  it('is replaced by a new worker process and the flow finishes', async () => {
    const first = await startWorkerProcess(env);
    children.push(first.child);
    const flowId = randomUUID();
    const handle = await startConsentFlow(env.client, env.taskQueue, {
      flowId,
      client: { clientId: 'crash-client', clientName: null, redirectHost: null, registration: 'static' },
      upstreams: ['github'],
      scopes: ['mcp:tools'],
      ttlMs: 120_000,
    });
    await handle.executeUpdate(chooseIdentity, { args: [{ userId: 'grace', source: 'dev' }] });

    const exited = new Promise((resolve) => first.child.once('exit', (_code, signal) => resolve(signal)));
    first.child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    const second = await startWorkerProcess(env);
    children.push(second.child);
    expect(second.child.pid).not.toBe(first.child.pid);

    await handle.executeUpdate(chooseServices, { args: [{ upstreams: ['github'] }] });
    await handle.executeUpdate(decide, { args: [{ decision: 'approve' }] });
    expect(await handle.result()).toEqual({ kind: 'approved', userId: 'grace', upstreams: ['github'], scopes: ['mcp:tools'] });
    expect((await env.store.getFlow(flowId))?.status).toBe('approved');

    second.child.kill('SIGTERM');
    const code = await new Promise((resolve) => second.child.once('exit', (c) => resolve(c)));
    expect(code).toBe(0);
  }, 120_000);
});

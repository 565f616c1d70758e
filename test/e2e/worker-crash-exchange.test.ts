import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { projectDir } from '../../server/paths.js';
import { ConsentDriver, createPkce, authorizationUrl, registerClient } from '../helpers/consent-driver.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startCallbackServer, type CallbackServer } from '../helpers/mcp-client.js';
import { temporalUnavailable } from '../helpers/temporal.js';

/** Runs a worker script as a process of its own against the test gateway's task queue and store. */
function startWorker(script: string, env: Record<string, string>): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: projectDir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not start:\n${output}`)), 30_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('worker running')) {
        clearTimeout(timer);
        resolve({ child, output: () => output });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited (${code}) before it ran:\n${output}`));
    });
  });
}

describe.skipIf(temporalUnavailable)('a worker killed between the upstream code exchange and storing the tokens', () => {
  let github: FakeUpstream;
  let gateway: TestGateway;
  let callback: CallbackServer;
  let env: Record<string, string>;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    github = await startFakeUpstream({ preset: 'github', autoLogin: 'octo-crash' });
    callback = await startCallbackServer();
    const upstreams = [
      {
        name: 'github',
        displayName: 'GitHub',
        mcpUrl: github.mcpUrl,
        auth: { type: 'oauth' as const, issuer: github.issuer, client: { kind: 'static' as const, clientId: github.clientId!, clientSecret: github.clientSecret!, authMethod: 'client_secret_post' as const }, resource: true },
        scopes: [...github.scopes],
      },
    ];
    gateway = await startTestGateway((config) => {
      config.upstreams = upstreams;
    }, { worker: false });
    const configFile = path.join(gateway.config.dataDir, 'worker.yml');
    await writeFile(
      configFile,
      stringify({
        upstreams: [{ name: 'github', displayName: 'GitHub', mcpUrl: github.mcpUrl, scopes: [...github.scopes], auth: { type: 'oauth', issuer: github.issuer, clientId: github.clientId, clientSecret: github.clientSecret, authMethod: 'client_secret_post' } }],
      }),
    );
    env = {
      GATEWAY_CONFIG: configFile,
      GATEWAY_DATA_DIR: gateway.config.dataDir,
      GATEWAY_STORE_URL: gateway.config.store.url,
      GATEWAY_PUBLIC_URL: gateway.url,
      GATEWAY_PORT: String(new URL(gateway.url).port),
      TEMPORAL_ADDRESS: gateway.config.temporal.address,
      TEMPORAL_NAMESPACE: gateway.config.temporal.namespace,
      TEMPORAL_TASK_QUEUE: gateway.config.temporal.taskQueue,
    };
  });

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await callback?.close();
    await gateway?.close();
    await github?.close();
  });

  it('ends connected, and the upstream saw exactly one code exchange', async () => {
    const crashing = await startWorker('test/helpers/crashing-worker.ts', env);
    children.push(crashing.child);
    const crashed = new Promise<NodeJS.Signals | null>((resolve) => crashing.child.once('exit', (_code, signal) => resolve(signal)));

    const clientId = await registerClient(gateway.url, [callback.url], 'Crash Test Client');
    const pkce = createPkce();
    const driver = new ConsentDriver(gateway.url);
    const { uid, csrfToken } = await driver.start(authorizationUrl(gateway.url, { clientId, redirectUri: callback.url, pkce }));
    expect((await driver.post(uid, 'identity', { userId: 'grace' })).status).toBe(200);
    const connect = await driver.request(`/interaction/${uid}/connect`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrfToken },
      body: JSON.stringify({ upstream: 'github' }),
    });
    expect(connect.status).toBe(200);
    const { redirectTo } = JSON.parse(connect.body) as { redirectTo: string };
    // The fake upstream signs in on its own (autoLogin) and redirects to the gateway's callback.
    const callbackUrl = await github.completeAuthorization(redirectTo);
    expect(callbackUrl.pathname).toBe('/oauth/upstream/callback');

    // The callback waits on the workflow, whose exchange kills the worker; a new worker finishes it.
    const answered = driver.request(callbackUrl.href);
    expect(await crashed).toBe('SIGKILL');
    expect(crashing.output()).toContain('crashing after the code exchange');
    expect(github.counters.codeExchanges).toBe(1);
    expect(await gateway.store.getUpstreamTokens('grace', 'github')).toBeUndefined();

    const healthy = await startWorker('server/worker-main.ts', env);
    children.push(healthy.child);
    let response = await answered;
    // Answered "try again" (503) while no worker ran: the browser loads the callback again, which
    // goes on with the same update until the retried exchange ends.
    for (let reloads = 0; response.status === 503 && reloads < 15; reloads += 1) response = await driver.request(callbackUrl.href);
    expect(response.status, response.body.slice(0, 2000)).toBe(302);
    expect(response.location?.pathname).toBe(`/interaction/${uid}`);
    expect((await gateway.store.getUpstreamTokens('grace', 'github'))?.status).toBe('connected');
    expect(github.counters.codeExchanges).toBe(1);
    const state = await driver.state(uid);
    expect(state.body.upstreams.find((upstream) => upstream.name === 'github')?.status).toBe('connected');
  }, 90_000);
});

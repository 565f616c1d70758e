import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitationCompleteNotificationSchema, ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { projectDir } from '../../server/paths.js';
import { openStore } from '../../server/store/open-store.js';
import type { GatewayStore } from '../../server/store/store.js';
import { startBalancer, type Balancer } from '../helpers/balancer.js';
import { authorizationUrl, ConsentDriver, createPkce, initializeMcp, postForm, registerClient } from '../helpers/consent-driver.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { freePort } from '../helpers/free-port.js';
import { obtainGatewayToken } from '../helpers/gateway-token.js';
import { createTestDatabase, postgresUnavailable } from '../helpers/postgres.js';
import { temporalUnavailable } from '../helpers/temporal.js';

interface FleetProcess {
  name: string;
  child: ChildProcess;
  output: () => string;
  exited: Promise<NodeJS.Signals | number | null>;
}

/** Starts `script` as a process of its own and resolves once its output shows `ready`. */
function startProcess(name: string, script: string, env: Record<string, string>, ready: string): Promise<FleetProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: projectDir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start:\n${output}`)), 60_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes(ready)) {
        clearTimeout(timer);
        resolve({ name, child, output: () => output, exited });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((how) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${String(how)}) before it was ready:\n${output}`));
    });
  });
}

const skip = Boolean(temporalUnavailable) || Boolean(postgresUnavailable);

describe.skipIf(skip)('a fleet: two web processes and two workers on one Temporal namespace and one PostgreSQL database', () => {
  let github: FakeUpstream;
  let balancer: Balancer;
  let store: GatewayStore;
  let env: Record<string, string>;
  let webA: FleetProcess;
  let webB: FleetProcess;
  let urls: { a: string; b: string };
  const processes: FleetProcess[] = [];
  const dirs: string[] = [];
  let workers: Promise<void> | undefined;

  /** The fleet's two healthy workers, started once by whichever test needs them first. */
  const ensureWorkers = () =>
    (workers ??= (async () => {
      for (const name of ['worker 1', 'worker 2']) processes.push(await startProcess(name, 'server/worker-main.ts', await processEnv(), 'worker running'));
    })());

  /** Each process has a data folder of its own: whatever they share goes through PostgreSQL and Temporal. */
  const processEnv = async (port?: number) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cg-fleet-'));
    dirs.push(dir);
    return { ...env, GATEWAY_DATA_DIR: dir, ...(port ? { GATEWAY_PORT: String(port) } : {}) };
  };

  beforeAll(async () => {
    github = await startFakeUpstream({ preset: 'github', autoLogin: 'fleet-octo' });
    const [portA, portB] = [await freePort(), await freePort()];
    urls = { a: `http://127.0.0.1:${portA}`, b: `http://127.0.0.1:${portB}` };
    balancer = await startBalancer({ a: portA, b: portB });
    const shared = await mkdtemp(path.join(tmpdir(), 'cg-fleet-shared-'));
    dirs.push(shared);
    const configFile = path.join(shared, 'gateway.yml');
    await writeFile(
      configFile,
      stringify({
        upstreams: [{ name: 'github', displayName: 'GitHub', mcpUrl: github.mcpUrl, scopes: [...github.scopes], auth: { type: 'oauth', issuer: github.issuer, clientId: github.clientId, clientSecret: github.clientSecret, authMethod: 'client_secret_post' } }],
      }),
    );
    // The fleet's keys come from the environment, as in production; none is generated per process.
    const signingKeysFile = path.join(shared, 'signing-keys.json');
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await writeFile(signingKeysFile, JSON.stringify({ keys: [{ ...privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: 'fleet-1' }] }), { mode: 0o600 });
    const storeUrl = await createTestDatabase();
    env = {
      GATEWAY_CONFIG: configFile,
      GATEWAY_STORE_URL: storeUrl,
      GATEWAY_PUBLIC_URL: balancer.url,
      GATEWAY_ENCRYPTION_KEYS: `fleet-1:${randomBytes(32).toString('base64')}`,
      GATEWAY_COOKIE_KEYS: randomBytes(32).toString('base64url'),
      GATEWAY_SIGNING_KEYS_FILE: signingKeysFile,
      GATEWAY_LOG_LEVEL: 'info',
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      TEMPORAL_NAMESPACE: inject('temporalNamespace'),
      TEMPORAL_TASK_QUEUE: `fleet-${randomUUID()}`,
    };
    store = await openStore({ backend: 'postgres', url: storeUrl, poolSize: 2 });
    [webA, webB] = await Promise.all([
      startProcess('web A', 'server/web-main.ts', await processEnv(portA), 'web server running'),
      startProcess('web B', 'server/web-main.ts', await processEnv(portB), 'web server running'),
    ]);
    processes.push(webA, webB);
  }, 180_000);

  afterAll(async () => {
    for (const { child } of processes) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await Promise.all(processes.map((p) => Promise.race([p.exited, new Promise((resolve) => setTimeout(resolve, 10_000))])));
    for (const { child } of processes) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await store?.close();
    await balancer?.close();
    await github?.close();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('gives exactly one code exchange when a worker dies between the exchange and storing the tokens', async () => {
    // Before the healthy workers join, the worker that crashes is the only one polling.
    const crashing = await startProcess('crashing worker', 'test/helpers/crashing-worker.ts', await processEnv(), 'worker running');
    processes.push(crashing);
    const exchangesBefore = github.counters.codeExchanges;
    const redirectUri = 'http://127.0.0.1:9/callback';
    const clientId = await registerClient(balancer.url, [redirectUri], 'Fleet crash client');
    const driver = new ConsentDriver(balancer.url);
    const { uid, csrfToken } = await driver.start(authorizationUrl(balancer.url, { clientId, redirectUri, pkce: createPkce() }));
    expect((await driver.post(uid, 'identity', { userId: 'fleet-grace' })).status).toBe(200);
    const connect = await driver.request(`/interaction/${uid}/connect`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrfToken },
      body: JSON.stringify({ upstream: 'github' }),
    });
    expect(connect.status, connect.body).toBe(200);
    const callbackUrl = await github.completeAuthorization((JSON.parse(connect.body) as { redirectTo: string }).redirectTo);
    const answered = driver.request(callbackUrl.href);
    expect(await crashing.exited).toBe('SIGKILL');
    expect(github.counters.codeExchanges).toBe(exchangesBefore + 1);
    expect(await store.getUpstreamTokens('fleet-grace', 'github')).toBeUndefined();

    await ensureWorkers();
    let response = await answered;
    // Answered "try again" (503) while no worker ran: the browser loads the callback again, which
    // goes on with the same update until the retried exchange ends.
    for (let reloads = 0; response.status === 503 && reloads < 15; reloads += 1) response = await driver.request(callbackUrl.href);
    expect(response.status, response.body.slice(0, 2000)).toBe(302);
    expect((await store.getUpstreamTokens('fleet-grace', 'github'))?.status).toBe('connected');
    expect(github.counters.codeExchanges).toBe(exchangesBefore + 1);
    expect(new Set(balancer.served)).toEqual(new Set(['a', 'b']));
  }, 120_000);

  it('finishes through web B a consent flow started through web A, and the token works on both', async () => {
    await ensureWorkers();
    const redirectUri = 'http://127.0.0.1:9/callback';
    const clientId = await registerClient(balancer.url, [redirectUri], 'Fleet client');
    const pkce = createPkce();
    const driver = new ConsentDriver(balancer.url);
    balancer.route = 'a';
    const { uid } = await driver.start(authorizationUrl(balancer.url, { clientId, redirectUri, pkce }));
    expect((await driver.post(uid, 'identity', { userId: 'fleet-ada' })).status).toBe(200);
    balancer.route = 'b';
    const served = balancer.served.length;
    const services = await driver.post(uid, 'services', { upstreams: ['github'] });
    expect(services.status, JSON.stringify(services.body)).toBe(200);
    const decided = await driver.post(uid, 'decision', { decision: 'approve' });
    expect(decided.status, JSON.stringify(decided.body)).toBe(200);
    const back = await driver.followToClient(decided.body.redirectTo!);
    expect(balancer.served.slice(served).every((web) => web === 'b')).toBe(true);
    balancer.route = 'alternate';
    const token = await postForm(balancer.url, '/token', { grant_type: 'authorization_code', code: back.searchParams.get('code') ?? '', code_verifier: pkce.verifier, redirect_uri: redirectUri, client_id: clientId, resource: `${balancer.url}/mcp` });
    expect(token.status, JSON.stringify(token.body)).toBe(200);
    for (const web of [urls.a, urls.b]) expect((await initializeMcp(web, token.body.access_token)).status).toBe(200);
  }, 120_000);

  it('refuses on web A, within 1 s, a token revoked through web B', async () => {
    await ensureWorkers();
    const { accessToken, clientId } = await obtainGatewayToken(balancer.url, { user: 'fleet-rita', upstreams: ['github'] });
    // Checked on A, so A holds it in its token cache.
    expect((await initializeMcp(urls.a, accessToken)).status).toBe(200);
    expect((await initializeMcp(urls.a, accessToken)).status).toBe(200);
    balancer.route = 'b';
    const revoked = await postForm(balancer.url, '/token/revocation', { token: accessToken, token_type_hint: 'access_token', client_id: clientId });
    balancer.route = 'alternate';
    expect(revoked.status).toBe(200);
    const revokedAt = Date.now();
    let status = 0;
    let elapsedMs = 0;
    while (elapsedMs <= 1_000) {
      status = (await initializeMcp(urls.a, accessToken)).status;
      elapsedMs = Date.now() - revokedAt;
      if (status === 401) break;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    console.log(`revoke through B: web A answered ${status} after ${elapsedMs} ms`);
    expect(status).toBe(401);
    expect(elapsedMs).toBeLessThanOrEqual(1_000);
  }, 120_000);

  it('tells the client whose 2025 stream is on web A that an elicitation completed through web B', async () => {
    await ensureWorkers();
    const redirectUri = 'http://127.0.0.1:9/callback';
    // The consent leaves GitHub unconnected; the driver's cookies are the user's browser.
    const clientId = await registerClient(balancer.url, [redirectUri], 'Fleet elicitation client');
    const pkce = createPkce();
    const browser = new ConsentDriver(balancer.url);
    const back = await browser.consent(authorizationUrl(balancer.url, { clientId, redirectUri, pkce }), { user: 'fleet-erin', upstreams: ['github'] });
    const token = await postForm(balancer.url, '/token', { grant_type: 'authorization_code', code: back.searchParams.get('code') ?? '', code_verifier: pkce.verifier, redirect_uri: redirectUri, client_id: clientId, resource: `${balancer.url}/mcp` });
    expect(token.status).toBe(200);

    const client = new Client({ name: 'fleet-elicitation', version: '1.0.0' }, { capabilities: { elicitation: { url: {} } } });
    const completed: string[] = [];
    const connected: Promise<number>[] = [];
    client.setNotificationHandler(ElicitationCompleteNotificationSchema, (notification) => {
      completed.push(notification.params.elicitationId);
    });
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      const { url } = request.params as { url: string };
      // The user opens the link in their browser; the load balancer sends that browser to web B.
      balancer.route = 'b';
      connected.push(
        (async () => {
          const opened = await browser.request(url);
          const callbackUrl = await github.completeAuthorization(opened.location!);
          return (await browser.request(callbackUrl.href)).status;
        })(),
      );
      return { action: 'accept' };
    });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${urls.a}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token.body.access_token}` } } }));
    try {
      const result = await client.callTool({ name: 'github__whoami', arguments: {} });
      expect(result.content).toEqual([{ type: 'text', text: 'fleet-octo' }]);
      expect(connected).toHaveLength(1);
      expect(await connected[0]).toBe(200);
      const elicitations = await store.listUpstreamTokens('fleet-erin');
      expect(elicitations.map((tokens) => tokens.status)).toEqual(['connected']);
      await expect.poll(() => completed.length).toBe(1);
    } finally {
      balancer.route = 'alternate';
      await client.close();
    }
  }, 120_000);

  it('loses nothing when web A is killed mid-flow: the user finishes on web B', async () => {
    await ensureWorkers();
    const redirectUri = 'http://127.0.0.1:9/callback';
    const clientId = await registerClient(balancer.url, [redirectUri], 'Fleet kill client');
    const pkce = createPkce();
    const driver = new ConsentDriver(balancer.url);
    balancer.route = 'a';
    const { uid } = await driver.start(authorizationUrl(balancer.url, { clientId, redirectUri, pkce }));
    expect((await driver.post(uid, 'identity', { userId: 'fleet-kim' })).status).toBe(200);
    webA.child.kill('SIGKILL');
    expect(await webA.exited).toBe('SIGKILL');
    // The load balancer's health check takes A out.
    balancer.route = 'b';
    const state = await driver.state(uid);
    expect(state.status).toBe(200);
    expect(state.body.step).toBe('services');
    expect((await driver.post(uid, 'services', { upstreams: ['github'] })).status).toBe(200);
    const decided = await driver.post(uid, 'decision', { decision: 'approve' });
    expect(decided.status, JSON.stringify(decided.body)).toBe(200);
    const back = await driver.followToClient(decided.body.redirectTo!);
    const token = await postForm(balancer.url, '/token', { grant_type: 'authorization_code', code: back.searchParams.get('code') ?? '', code_verifier: pkce.verifier, redirect_uri: redirectUri, client_id: clientId, resource: `${balancer.url}/mcp` });
    expect(token.status).toBe(200);
    expect((await initializeMcp(urls.b, token.body.access_token)).status).toBe(200);
  }, 120_000);
});

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { inject } from 'vitest';
import { stringify } from 'yaml';
import { projectDir } from '../../server/paths.js';
import { loadTemporalDevSettings, startDevServer } from '../../server/temporal/dev-server.js';
import type { FakeUpstream } from './fake-upstream.js';
import { freePort } from './free-port.js';

/** One of the processes a gateway deployment runs, which a test may kill and start again. */
export interface RestartableProcess {
  readonly name: string;
  /** Whether it is running now. */
  readonly running: boolean;
  /** Its output since it last started (the dev server's goes to a log file instead). */
  output(): string;
  /** SIGKILL, then waits until it has exited. */
  kill(): Promise<void>;
  /** Starts it again (after a kill), with the same settings; resolves once it is ready. */
  start(): Promise<void>;
  /** SIGTERM, then SIGKILL if it has not exited within 10 s. */
  stop(): Promise<void>;
}

/**
 * A Temporal dev server, a web process (`server/web-main.ts`) and a worker process
 * (`server/worker-main.ts`), each a process of its own (compiled as `npm run web` does), sharing
 * one PostgreSQL database. The dev server keeps its history in a file, so it comes back where it
 * was when started again on the same port.
 */
export interface GatewayProcesses {
  url: string;
  temporalAddress: string;
  namespace: string;
  taskQueue: string;
  temporal: RestartableProcess;
  web: RestartableProcess;
  worker: RestartableProcess;
  close(): Promise<void>;
}

/** The same start/kill/stop for any child process. */
function restartable(name: string, launch: () => Promise<ChildProcess>, capture: () => string): RestartableProcess {
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const running = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  return {
    name,
    get running() {
      return running();
    },
    output: capture,
    async start() {
      if (running()) throw new Error(`${name} is running already`);
      const started = await launch();
      child = started;
      exited = started.exitCode !== null || started.signalCode !== null ? Promise.resolve() : new Promise((resolve) => started.once('exit', () => resolve()));
    },
    async kill() {
      if (running()) child!.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (!running()) return;
      child!.kill('SIGTERM');
      const timer = setTimeout(() => child?.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Compiles the web and worker entry points once, as `npm run web` and `npm run worker` do, into a
 * folder of their own under `.build/`: every restart runs the same code, and starts without a
 * TypeScript loader.
 */
async function buildEntryPoints(): Promise<{ dir: string; web: string; worker: string }> {
  const dir = path.join(projectDir, '.build', `processes-${randomUUID()}`);
  await promisify(execFile)(process.execPath, ['scripts/build-server.mjs', '--outdir', dir], { cwd: projectDir });
  return { dir, web: path.join(dir, 'web-main.js'), worker: path.join(dir, 'worker-main.js') };
}

/** Runs a compiled entry point; resolves once its output shows `ready`. */
function nodeProcess(name: string, script: string, env: Record<string, string>, ready: string) {
  let output = '';
  const launch = () =>
    new Promise<ChildProcess>((resolve, reject) => {
      output = '';
      const child = spawn(process.execPath, ['--enable-source-maps', script], { cwd: projectDir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`${name} did not start:\n${output}`));
      }, 60_000);
      const onData = (chunk: Buffer) => {
        output = (output + chunk.toString()).slice(-200_000);
        if (output.includes(ready)) {
          clearTimeout(timer);
          resolve(child);
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${String(signal ?? code)}) before it was ready:\n${output}`));
      });
    });
  return restartable(name, launch, () => output);
}

/** Options of {@link startGatewayProcesses}. */
export interface GatewayProcessesOptions {
  /** The upstreams of the gateway's config, each a fake upstream with a static client (`github` preset). */
  upstreams: Array<{ name: string; upstream: FakeUpstream }>;
  /** URL of an empty PostgreSQL database for the store. */
  storeUrl: string;
}

/**
 * Starts a dev server of its own (a temporary database file, a free port, headless), then the
 * web and the worker process against it, with the fleet's keys given in the environment.
 */
export async function startGatewayProcesses(options: GatewayProcessesOptions): Promise<GatewayProcesses> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cg-processes-'));
  const configFile = path.join(dir, 'gateway.yml');
  await writeFile(
    configFile,
    stringify({
      upstreams: options.upstreams.map(({ name, upstream }) => ({
        name,
        displayName: `Upstream ${name}`,
        mcpUrl: upstream.mcpUrl,
        scopes: [...upstream.scopes],
        auth: { type: 'oauth', issuer: upstream.issuer, clientId: upstream.clientId, clientSecret: upstream.clientSecret, authMethod: 'client_secret_post' },
      })),
    }),
  );
  const signingKeysFile = path.join(dir, 'signing-keys.json');
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  await writeFile(signingKeysFile, JSON.stringify({ keys: [{ ...privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: 'processes-1' }] }), { mode: 0o600 });

  const settings = await loadTemporalDevSettings();
  const temporalPort = await freePort();
  const webPort = await freePort();
  const temporalLog = path.join(dir, 'temporal.log');
  const temporal = restartable(
    'Temporal dev server',
    async () => {
      const devServer = await startDevServer({
        cliPath: inject('temporalCliPath'),
        settings,
        overrides: { port: temporalPort, dbFile: path.join(dir, 'temporal.db'), headless: true },
        logFile: temporalLog,
      });
      return devServer.process;
    },
    () => `(the dev server writes to ${temporalLog})`,
  );

  const url = `http://127.0.0.1:${webPort}`;
  const taskQueue = `processes-${randomUUID()}`;
  const env = {
    GATEWAY_CONFIG: configFile,
    GATEWAY_STORE_URL: options.storeUrl,
    GATEWAY_PUBLIC_URL: url,
    GATEWAY_ENCRYPTION_KEYS: `processes-1:${randomBytes(32).toString('base64')}`,
    GATEWAY_COOKIE_KEYS: randomBytes(32).toString('base64url'),
    GATEWAY_SIGNING_KEYS_FILE: signingKeysFile,
    GATEWAY_LOG_LEVEL: 'info',
    TEMPORAL_ADDRESS: `${settings.ip}:${temporalPort}`,
    TEMPORAL_NAMESPACE: settings.namespace,
    TEMPORAL_TASK_QUEUE: taskQueue,
  };
  // Each process has a data folder of its own: what they share goes through PostgreSQL and Temporal.
  const entryPoints = await buildEntryPoints();
  const web = nodeProcess('web', entryPoints.web, { ...env, GATEWAY_DATA_DIR: path.join(dir, 'web'), GATEWAY_PORT: String(webPort) }, 'web server running');
  const worker = nodeProcess('worker', entryPoints.worker, { ...env, GATEWAY_DATA_DIR: path.join(dir, 'worker') }, 'worker running');
  const all = [web, worker, temporal];
  const removeFolders = () => Promise.all([dir, entryPoints.dir].map((folder) => rm(folder, { recursive: true, force: true })));
  try {
    await temporal.start();
    await Promise.all([web.start(), worker.start()]);
  } catch (error) {
    for (const process of all) await process.kill();
    await removeFolders();
    throw error;
  }
  return {
    url,
    temporalAddress: env.TEMPORAL_ADDRESS,
    namespace: settings.namespace,
    taskQueue,
    temporal,
    web,
    worker,
    async close() {
      for (const process of all) await process.stop();
      await removeFolders();
    },
  };
}

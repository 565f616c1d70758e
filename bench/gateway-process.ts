/**
 * The built gateway (`scripts/run-server.sh main`, what `npm start` runs) in a process of its own,
 * as the benchmarks that measure it from outside start it: a fresh data folder, free ports (the
 * embedded Temporal dev server's included), and its output kept for the error that explains a
 * failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import path from 'node:path';
import { projectPath } from '../server/paths.js';
import { ensureWorkflowBundles } from '../server/temporal/workflow-bundle.js';
import { childrenOf, fmt, freePort, isAlive, sleep } from './support.js';

const readyLine = 'Consent Gateway is ready';

/** Builds the workflow bundle and the server as `npm start` does; prints one setup line. */
export async function buildGateway(): Promise<void> {
  const [bundle] = await ensureWorkflowBundles();
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    spawn(process.execPath, ['scripts/build-server.mjs'], { cwd: projectPath(), stdio: 'inherit' }).once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`build-server exited ${code}`))));
  });
  console.log(
    `setup: server built in ${fmt(performance.now() - started, 0)} ms (.build/server/main.js); workflow bundle ${bundle.built ? 'built now' : 'already up to date'} (${path.relative(projectPath(), bundle.codePath)})`,
  );
}

/** A gateway process started by {@link spawnGateway}. */
export interface GatewayProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Its public URL, `http://127.0.0.1:<port>`. */
  readonly url: string;
  readonly spawnedAt: number;
  /** When it printed its ready line, and the start time it reported itself in it (ms). */
  readonly readyLine: { at: number; selfReportedMs: number } | undefined;
  readonly exitedAt: number | undefined;
  readonly exited: Promise<void>;
  /** An error carrying `why` and the tail of its output. */
  fail(why: string): Error;
  /** Resolves once the ready line was printed and `/healthz` answered 200, with the time it did. */
  ready(timeoutMs?: number): Promise<number>;
  /** The Temporal dev server it started (`temporal server start-dev`), once it runs. */
  devServer(): Promise<number | undefined>;
  /** Its child processes as last seen (at ready, or by {@link devServer}). */
  children(): number[];
  /** SIGTERM; resolves with the time it exited, or rejects after `timeoutMs`. */
  stop(timeoutMs?: number): Promise<number>;
  /** Kills whatever of it and its children still runs (by pid), and removes its data folder. */
  dispose(): Promise<void>;
}

async function healthy(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    await response.body?.cancel();
    return response.status === 200;
  } catch {
    return false;
  }
}

/** Starts the built gateway on the embedded default, with `configYaml` as its config file when given. */
export async function spawnGateway(options: { configYaml?: string } = {}): Promise<GatewayProcess> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'cg-bench-gateway-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GATEWAY_DATA_DIR: dataDir,
    GATEWAY_PORT: String(port),
    GATEWAY_PUBLIC_URL: url,
    TEMPORAL_DEV_PORT: String(await freePort()),
    TEMPORAL_DEV_UI_PORT: String(await freePort()),
  };
  // An outside Temporal would skip the embedded dev server the benchmarks start with it.
  delete env.TEMPORAL_ADDRESS;
  delete env.GATEWAY_CONFIG;
  if (options.configYaml !== undefined) {
    env.GATEWAY_CONFIG = path.join(dataDir, 'consent-gateway.yml');
    await writeFile(env.GATEWAY_CONFIG, options.configYaml);
  }

  const spawnedAt = performance.now();
  // As `npm start` runs it (scripts/run-server.sh execs node, so the pid is the gateway's), with this Node first on the PATH.
  env.PATH = `${path.dirname(process.execPath)}${path.delimiter}${env.PATH ?? ''}`;
  const child = spawn('sh', ['scripts/run-server.sh', 'main'], { cwd: projectPath(), env, stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid!;
  let output = '';
  let readyAt: { at: number; selfReportedMs: number } | undefined;
  let exitedAt: number | undefined;
  const onOutput = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-16_384);
    if (readyAt === undefined && output.includes(readyLine)) {
      readyAt = { at: performance.now(), selfReportedMs: Number(new RegExp(`${readyLine} \\((\\d+(?:\\.\\d+)?) s\\)`).exec(output)?.[1]) * 1000 };
    }
  };
  child.stdout!.on('data', onOutput);
  child.stderr!.on('data', onOutput);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exitedAt = performance.now();
      resolve();
    }),
  );
  const fail = (why: string) => new Error(`${why}\n--- gateway output (tail) ---\n${output.slice(-4000)}`);
  let children: number[] = [];

  const gateway: GatewayProcess = {
    child,
    pid,
    url,
    spawnedAt,
    get readyLine() {
      return readyAt;
    },
    get exitedAt() {
      return exitedAt;
    },
    exited,
    fail,
    async ready(timeoutMs = 120_000) {
      const deadline = spawnedAt + timeoutMs;
      while (readyAt === undefined || !(await healthy(`${url}/healthz`))) {
        if (exitedAt !== undefined) throw fail(`the gateway exited (code ${child.exitCode}) before it was ready`);
        if (performance.now() > deadline) throw fail(`the gateway was not ready within ${timeoutMs / 1000} s`);
        await sleep(readyAt === undefined ? 20 : 10);
      }
      const at = performance.now();
      children = await childrenOf(pid);
      return at;
    },
    async devServer() {
      children = await childrenOf(pid);
      for (const one of children) {
        const cmdline = await readFile(`/proc/${one}/cmdline`, 'utf8').catch(() => '');
        if (cmdline.split('\0').includes('start-dev')) return one;
      }
      return undefined;
    },
    children: () => children,
    async stop(timeoutMs = 30_000) {
      child.kill('SIGTERM');
      // An unref'd timer: the wait must not hold the benchmark's process open once the gateway exited.
      const timedOut = await Promise.race([exited.then(() => false), delay(timeoutMs, true, { ref: false })]);
      if (timedOut) throw fail(`the gateway did not exit within ${timeoutMs / 1000} s of SIGTERM`);
      return exitedAt!;
    },
    async dispose() {
      if (exitedAt === undefined) {
        child.kill('SIGKILL');
        await exited;
      }
      // Only the processes this gateway started: its own children, by pid.
      for (const one of children) if (await isAlive(one)) process.kill(one, 'SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return gateway;
}

/**
 * `npm start` from cold: spawns the built server (`node .build/server/main.js`, as `npm start` runs
 * it after `scripts/build-server.mjs`) with a fresh data folder and
 * free ports (the embedded dev server included) and measures the time until it prints "Consent
 * Gateway is ready" and `/healthz` answers 200; after an idle pause, the resident memory of the
 * gateway process (web + worker) and, separately, of the Temporal dev server it started; then
 * the time from SIGTERM to exit. The workflow bundle and the server are built first, as the budget assumes.
 *
 * Run: `node --import tsx bench/startup.ts [--runs 3] [--idle-seconds 5]`.
 * Prints one detail line per run, then one summary line of medians with the DESIGN.md budget.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { projectPath } from '../server/paths.js';
import { ensureWorkflowBundle } from '../server/temporal/workflow-bundle.js';
import { childrenOf, cpuSecondsOf, fmt, freePort, isAlive, machineBusySeconds, median, memoryOf, sleep } from './support.js';

// DESIGN.md's "250 MB" read as MiB, the unit /proc reports (in KiB).
const budget = { readySeconds: 10, rssMiB: 250 } as const;
const readyLine = 'Consent Gateway is ready';
/** Share of one core that other processes may use while starting before the figures are flagged. */
const disturbedShare = 0.2;
const readyTimeoutMs = 120_000;
const exitTimeoutMs = 30_000;

/** Figures of one start → idle → stop cycle. */
interface StartupRun {
  /** Spawn until the ready line and a 200 from /healthz, whichever comes last. */
  readyMs: number;
  /** Spawn until the ready line alone. */
  readyLineMs: number;
  /** What the gateway itself printed in the ready line (from its own start, so without Node's boot). */
  selfReportedMs: number;
  gatewayRssMiB: number;
  gatewayPeakRssMiB: number;
  /** RSS of the Temporal dev server the gateway started. */
  devServerRssMiB: number;
  /** SIGTERM until the gateway process exited. */
  exitMs: number;
  /** Child processes still running once the gateway had exited. */
  leftovers: number[];
  /** CPU seconds spent from spawn to ready by the gateway and by the dev server. */
  readyCpu: { gateway: number; devServer: number };
  /** Share of one core that other processes and kernel threads used from spawn to ready. */
  othersShare: number;
}

function options(): { runs: number; idleMs: number } {
  const { values } = parseArgs({
    options: { runs: { type: 'string', default: '3' }, 'idle-seconds': { type: 'string', default: '5' } },
  });
  const runs = Number(values.runs);
  const idle = Number(values['idle-seconds']);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer (got "${values.runs}")`);
  if (!Number.isFinite(idle) || idle < 0) throw new Error(`--idle-seconds must be a number of seconds (got "${values['idle-seconds']}")`);
  return { runs, idleMs: idle * 1000 };
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

const mib = (kib: number) => kib / 1024;

/** The child that runs `temporal server start-dev`, by its command line. */
async function findDevServer(children: number[]): Promise<number | undefined> {
  for (const child of children) {
    const cmdline = await readFile(`/proc/${child}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.split('\0').includes('start-dev')) return child;
  }
  return undefined;
}

/** One cycle against a fresh data folder; the gateway and its children are gone when it returns. */
async function startOnce(idleMs: number): Promise<StartupRun> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'cg-bench-start-'));
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GATEWAY_DATA_DIR: dataDir,
    GATEWAY_PORT: String(port),
    TEMPORAL_DEV_PORT: String(await freePort()),
    TEMPORAL_DEV_UI_PORT: String(await freePort()),
  };
  // An outside Temporal would skip the embedded dev server this benchmark is about.
  delete env.TEMPORAL_ADDRESS;

  const machineBefore = await machineBusySeconds();
  const spawnedAt = performance.now();
  const gateway = spawn(process.execPath, ['--enable-source-maps', '.build/server/main.js'], { cwd: projectPath(), env, stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = gateway.pid!;
  let output = '';
  let readyLineAt: number | undefined;
  let selfReportedMs = Number.NaN;
  const onOutput = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-16_384);
    if (readyLineAt === undefined && output.includes(readyLine)) {
      readyLineAt = performance.now();
      selfReportedMs = Number(new RegExp(`${readyLine} \\((\\d+(?:\\.\\d+)?) s\\)`).exec(output)?.[1]) * 1000;
    }
  };
  gateway.stdout.on('data', onOutput);
  gateway.stderr.on('data', onOutput);
  let exitedAt: number | undefined;
  const exited = new Promise<void>((resolve) =>
    gateway.once('exit', () => {
      exitedAt = performance.now();
      resolve();
    }),
  );
  const fail = (why: string) => new Error(`${why}\n--- gateway output (tail) ---\n${output.slice(-4000)}`);
  let children: number[] = [];

  try {
    const healthUrl = `http://127.0.0.1:${port}/healthz`;
    const deadline = spawnedAt + readyTimeoutMs;
    while (readyLineAt === undefined || !(await healthy(healthUrl))) {
      if (exitedAt !== undefined) throw fail(`the gateway exited (code ${gateway.exitCode}) before it was ready`);
      if (performance.now() > deadline) throw fail(`the gateway was not ready within ${readyTimeoutMs / 1000} s`);
      await sleep(readyLineAt === undefined ? 20 : 10);
    }
    const readyAt = performance.now();
    const machineAtReady = await machineBusySeconds();
    children = await childrenOf(pid);
    const devServer = await findDevServer(children);
    if (devServer === undefined) throw fail('the gateway is ready, but no `temporal server start-dev` child was found');
    const gatewayCpu = (await cpuSecondsOf(pid)) ?? Number.NaN;
    const devServerCpu = (await cpuSecondsOf(devServer)) ?? Number.NaN;

    await sleep(idleMs);
    const gatewayMemory = await memoryOf(pid);
    if (!gatewayMemory) throw fail('the gateway exited while idle');
    const devServerMemory = await memoryOf(devServer);
    if (!devServerMemory) throw fail('the Temporal dev server exited while idle');

    const termAt = performance.now();
    gateway.kill('SIGTERM');
    const timedOut = await Promise.race([exited.then(() => false), sleep(exitTimeoutMs).then(() => true)]);
    if (timedOut) throw fail(`the gateway did not exit within ${exitTimeoutMs / 1000} s of SIGTERM`);
    const leftovers: number[] = [];
    for (const child of children) if (await isAlive(child)) leftovers.push(child);

    return {
      readyMs: readyAt - spawnedAt,
      readyLineMs: readyLineAt - spawnedAt,
      selfReportedMs,
      gatewayRssMiB: mib(gatewayMemory.rssKiB),
      gatewayPeakRssMiB: mib(gatewayMemory.peakRssKiB),
      devServerRssMiB: mib(devServerMemory.rssKiB),
      exitMs: exitedAt! - termAt,
      leftovers,
      readyCpu: { gateway: gatewayCpu, devServer: devServerCpu },
      othersShare:
        machineBefore === undefined || machineAtReady === undefined
          ? Number.NaN
          : Math.max(0, machineAtReady - machineBefore - gatewayCpu - devServerCpu) / ((readyAt - spawnedAt) / 1000),
    };
  } finally {
    if (exitedAt === undefined) {
      gateway.kill('SIGKILL');
      await exited;
    }
    // Only the processes this run started: the gateway's own children, by pid.
    for (const child of children) if (await isAlive(child)) process.kill(child, 'SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { runs, idleMs } = options();
  const bundle = await ensureWorkflowBundle();
  const built = performance.now();
  await new Promise<void>((resolve, reject) => {
    spawn(process.execPath, ['scripts/build-server.mjs'], { cwd: projectPath(), stdio: 'inherit' }).once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`build-server exited ${code}`))));
  });
  console.log(`setup: server built in ${fmt(performance.now() - built, 0)} ms (.build/server/main.js)`);
  console.log(`setup: workflow bundle ${bundle.built ? 'built now' : 'already up to date'} (${path.relative(projectPath(), bundle.codePath)}); idle ${idleMs / 1000} s before measuring RSS`);
  const results: StartupRun[] = [];
  for (let i = 1; i <= runs; i += 1) {
    const run = await startOnce(idleMs);
    results.push(run);
    console.log(
      `run ${i}: ready ${fmt(run.readyMs / 1000, 2)} s (ready line ${fmt(run.readyLineMs / 1000, 2)} s, gateway's own count ${fmt(run.selfReportedMs / 1000, 1)} s), ` +
        `web + worker RSS ${fmt(run.gatewayRssMiB, 0)} MiB (peak ${fmt(run.gatewayPeakRssMiB, 0)} MiB), Temporal dev server RSS ${fmt(run.devServerRssMiB, 0)} MiB, ` +
        `exit ${fmt(run.exitMs / 1000, 2)} s after SIGTERM; CPU until ready: gateway ${fmt(run.readyCpu.gateway, 2)} s, ` +
        `dev server ${fmt(run.readyCpu.devServer, 2)} s, other processes and kernel threads ${fmt(run.othersShare * 100, 0)} % of a core` +
        (run.leftovers.length > 0 ? `, dev server still running after the gateway exited (pid ${run.leftovers.join(', ')}; killed)` : ''),
    );
  }
  const med = (pick: (run: StartupRun) => number) => median(results.map(pick));
  const othersShare = Math.max(...results.map((r) => r.othersShare).filter(Number.isFinite));
  console.log(
    `startup: ready ${fmt(med((r) => r.readyMs) / 1000)} s (budget ≤ ${budget.readySeconds} s), ` +
      `web + worker RSS ${fmt(med((r) => r.gatewayRssMiB), 0)} MiB idle (budget ≤ ${budget.rssMiB} MiB), ` +
      `Temporal dev server RSS ${fmt(med((r) => r.devServerRssMiB), 0)} MiB, exit ${fmt(med((r) => r.exitMs) / 1000, 2)} s after SIGTERM, median of ${runs}` +
      (othersShare > disturbedShare ? `, DISTURBED: other processes and kernel threads used up to ${fmt(othersShare * 100, 0)} % of a core` : ''),
  );
}

await main();

/** Small helpers shared by the benchmarks: ports, percentiles, /proc readings, number formats. */
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { projectPath } from '../server/paths.js';

export { freePort } from '../test/helpers/free-port.js';

/** The `p`-th percentile (0–100) of `values`, nearest-rank; NaN for no values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** The median of `values` (mean of the middle two for an even count); NaN for no values. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Formats a number with `digits` decimals, or "n/a" when it is not finite. */
export function fmt(value: number, digits = 1): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

/** Memory figures of one process from `/proc/<pid>/status`, in KiB; undefined once it is gone. */
export async function memoryOf(pid: number): Promise<{ rssKiB: number; peakRssKiB: number } | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined);
  if (!status) return undefined;
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rssKiB: field('VmRSS'), peakRssKiB: field('VmHWM') };
}

let clockTicks: number | undefined;

/** Clock ticks per second, the unit of CPU times in `/proc`. */
function ticksPerSecond(): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return clockTicks;
}

/** User + system CPU seconds a process has used so far, from `/proc/<pid>/stat`; undefined once it is gone. */
export async function cpuSecondsOf(pid: number): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (!stat) return undefined;
  // The command name (field 2) may contain spaces, so count fields from its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
}

/** Busy CPU seconds of the whole machine so far (all cores, idle and iowait excluded), from `/proc/stat`. */
export async function machineBusySeconds(): Promise<number | undefined> {
  const stat = await readFile('/proc/stat', 'utf8').catch(() => undefined);
  const fields = stat?.split('\n', 1)[0]?.trim().split(/\s+/).slice(1, 9).map(Number);
  if (!fields || fields.length < 8) return undefined;
  const [user, nice, system, , , irq, softirq, steal] = fields as [number, number, number, number, number, number, number, number];
  return (user + nice + system + irq + softirq + steal) / ticksPerSecond();
}

/** Pids of the live children of `pid`, found by scanning `/proc` (works without CONFIG_PROC_CHILDREN). */
export async function childrenOf(pid: number): Promise<number[]> {
  const children: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid) children.push(Number(entry));
  }
  return children;
}

/** True while a process with this pid exists and has not exited (a zombie counts as exited). */
export async function isAlive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return false;
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Compiles `entries` (name → source path) as `npm start` compiles the gateway (scripts/build-server.mjs),
 * into a new folder `.build/<prefix>-…` (where the compiled code finds the project's packages);
 * resolves with that folder, which the caller removes.
 */
export async function buildCompiled(prefix: string, entries: Record<string, string>): Promise<string> {
  await mkdir(projectPath('.build'), { recursive: true });
  const dir = await mkdtemp(path.join(projectPath('.build'), `${prefix}-`));
  const flags = Object.entries(entries).flatMap(([name, source]) => ['--entry', `${name}=${source}`]);
  await promisify(execFile)(process.execPath, ['scripts/build-server.mjs', '--outdir', dir, ...flags], { cwd: projectPath() });
  return dir;
}

/** The Node flags of scripts/node-flags, which scripts/run-server.sh starts the gateway with. */
export function gatewayNodeFlags(): string[] {
  return readFileSync(projectPath('scripts/node-flags'), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

/** The Node arguments and environment that start a compiled script as scripts/run-server.sh starts the gateway. */
export function compiledStart(script: string, env: NodeJS.ProcessEnv = process.env): { args: string[]; env: NodeJS.ProcessEnv } {
  return { args: [...gatewayNodeFlags(), '--import', projectPath('scripts/source-maps.mjs'), script], env: { MALLOC_ARENA_MAX: '2', ...env } };
}

/**
 * Runs every benchmark in sequence, each in its own process so none inherits another's warm
 * caches or memory, passes their output through, and ends with their figure lines together: one
 * line per figure, each a side-by-side comparison (or a budget) measured in that same run.
 *
 * Run: `npm run bench` (all), `npm run bench -- startup memory` (only the named ones),
 * `npm run bench -- --quick` (each one briefly: to see that it runs, not for its figures).
 *
 * The benchmarks run compiled as `npm start` compiles the gateway (scripts/build-server.mjs) and
 * started as it starts it (scripts/run-server.sh), so the gateway code they run in their own
 * process (the hot path, the consent flows' worker and routes) is the code users run, not its form
 * under a TypeScript loader. `node --import tsx bench/<script>.ts` still runs one from its sources.
 */
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { buildCompiled, compiledStart } from './support.js';

/** A benchmark: its script `bench/<script>.ts`, its arguments in a full run and in a quick one. */
interface Benchmark {
  script: string;
  args: readonly string[];
  quickArgs: readonly string[];
}

// Two rounds, so a quick run also takes the path that alternates the batches.
const consentQuick = ['--flows', '10', '--concurrency', '5', '--warmup', '2', '--rounds', '2'];

/** The benchmarks, in the order they run; each prints figure lines that start with its script's name. */
const runs = {
  'hot-path': { script: 'hot-path', args: [], quickArgs: ['--requests', '2000'] },
  forward: { script: 'forward', args: [], quickArgs: ['--quick', '--no-peer'] },
  // Three rounds: the medians hold when other work on the machine comes and goes.
  'consent-flows': { script: 'consent-flows', args: ['--rounds', '3'], quickArgs: consentQuick },
  // A fleet's shape: two workers on one task queue, the store on PostgreSQL.
  'consent-flows-fleet': { script: 'consent-flows', args: ['--workers', '2', '--postgres', '--rounds', '3'], quickArgs: ['--workers', '2', '--postgres', ...consentQuick] },
  startup: { script: 'startup', args: [], quickArgs: ['--quick'] },
  memory: { script: 'memory', args: [], quickArgs: ['--quick'] },
  load: { script: 'load', args: [], quickArgs: ['--quick'] },
} as const satisfies Record<string, Benchmark>;
type Name = keyof typeof runs;
const benchmarks = Object.keys(runs) as Name[];

/** Runs one compiled benchmark, echoing its output; resolves with its figure lines and exit code. */
function runBenchmark(dir: string, name: Name, quick: boolean): Promise<{ figures: string[]; code: number | null }> {
  const { script, args, quickArgs } = runs[name];
  return new Promise((resolve, reject) => {
    const start = compiledStart(path.join(dir, `${script}.js`));
    const child = spawn(process.execPath, [...start.args, ...(quick ? quickArgs : args)], {
      env: start.env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      process.stdout.write(chunk);
      stdout += chunk.toString('utf8');
    });
    child.once('error', reject);
    child.once('close', (code) => {
      const figures = stdout
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => line.startsWith(`${script} `) || line.startsWith(`${script}:`));
      resolve({ figures, code });
    });
  });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const quick = argv.includes('--quick');
  const wanted = argv.filter((arg) => arg !== '--quick');
  const unknown = wanted.filter((name) => !(benchmarks as readonly string[]).includes(name));
  if (unknown.length > 0) throw new Error(`unknown benchmark(s): ${unknown.join(', ')}; known: ${benchmarks.join(', ')}; option: --quick`);
  const selected = wanted.length > 0 ? benchmarks.filter((name) => wanted.includes(name)) : [...benchmarks];

  const figures: string[] = [];
  let failed = false;
  const dir = await buildCompiled('bench-run', Object.fromEntries(selected.map((name) => [runs[name].script, `bench/${runs[name].script}.ts`])));
  try {
    for (const name of selected) {
      console.log(`\n=== ${name}${quick ? ' (quick)' : ''} ===`);
      const result = await runBenchmark(dir, name, quick);
      if (result.code === 0 && result.figures.length > 0) {
        figures.push(...result.figures);
      } else {
        failed = true;
        figures.push(`${name}: FAILED (exit code ${result.code}${result.figures.length === 0 ? ', no figure printed' : ''})`);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  console.log(`\n=== figures${quick ? ' (quick: short runs, not for comparison)' : ''} ===\n${figures.join('\n')}`);
  if (failed) process.exitCode = 1;
}

await main();

/**
 * Runs every benchmark in sequence, each in its own process so none inherits another's warm
 * caches or memory, passes their output through, and ends with their summary lines together.
 *
 * Run: `npm run bench` (all) or `npm run bench -- startup` (only the named ones).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The benchmarks, in the order they run: a name, its script `bench/<script>.ts` and its arguments; each ends with one summary line. */
const runs = {
  'hot-path': { script: 'hot-path', args: [] },
  forward: { script: 'forward', args: [] },
  'consent-flows': { script: 'consent-flows', args: [] },
  // A fleet's shape: two workers on one task queue, the store on PostgreSQL.
  'consent-flows-fleet': { script: 'consent-flows', args: ['--workers', '2', '--postgres'] },
  startup: { script: 'startup', args: [] },
} as const satisfies Record<string, { script: string; args: readonly string[] }>;
const benchmarks = Object.keys(runs) as (keyof typeof runs)[];

/** Runs one benchmark, echoing its output; resolves with its last stdout line and exit code. */
function runBenchmark(name: keyof typeof runs): Promise<{ summary: string | undefined; code: number | null }> {
  const { script, args } = runs[name];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL(`./${script}.ts`, import.meta.url)), ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      process.stdout.write(chunk);
      stdout += chunk.toString('utf8');
    });
    child.once('error', reject);
    child.once('close', (code) => {
      const lines = stdout.split('\n').map((line) => line.trim()).filter(Boolean);
      resolve({ summary: lines.at(-1), code });
    });
  });
}

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((name) => !(benchmarks as readonly string[]).includes(name));
  if (unknown.length > 0) throw new Error(`unknown benchmark(s): ${unknown.join(', ')}; known: ${benchmarks.join(', ')}`);
  const selected = wanted.length > 0 ? benchmarks.filter((name) => wanted.includes(name)) : [...benchmarks];

  const summaries: string[] = [];
  let failed = false;
  for (const name of selected) {
    console.log(`\n=== ${name} ===`);
    const { summary, code } = await runBenchmark(name);
    if (code === 0 && summary) {
      summaries.push(summary);
    } else {
      failed = true;
      summaries.push(`${name}: FAILED (exit code ${code})`);
    }
  }
  console.log(`\n=== summary ===\n${summaries.join('\n')}`);
  if (failed) process.exitCode = 1;
}

await main();

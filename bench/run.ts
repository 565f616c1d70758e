/**
 * Runs every benchmark in sequence, each in its own process so none inherits another's warm
 * caches or memory, passes their output through, and ends with their summary lines together.
 *
 * Run: `npm run bench` (all) or `npm run bench -- startup` (only the named ones).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The benchmarks, in the order they run; each is `bench/<name>.ts` and ends with one summary line. */
const benchmarks = ['hot-path', 'forward', 'consent-flows', 'startup'] as const;

/** Runs one benchmark, echoing its output; resolves with its last stdout line and exit code. */
function runBenchmark(name: string): Promise<{ summary: string | undefined; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL(`./${name}.ts`, import.meta.url))], {
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

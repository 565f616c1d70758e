import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { projectPath } from '../../server/paths.js';

/** Runs `npm run bench -- --quick` (its script, without npm); resolves with its exit code and stdout. */
function runQuickBench(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick'], { cwd: projectPath(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-8_000)));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

// Checks that every benchmark runs to its end and prints its figures; the figures themselves
// (short runs on a shared machine) are not judged here.
describe('npm run bench -- --quick', () => {
  it('runs every benchmark, the load run included, and prints each figure line', { timeout: 900_000 }, async () => {
    const { code, stdout, stderr } = await runQuickBench();
    const figures = stdout.slice(stdout.lastIndexOf('=== figures')).split('\n').slice(1);
    expect(code, `${stdout.slice(-4_000)}\n${stderr}`).toBe(0);
    expect(figures.join('\n')).not.toContain('FAILED');
    const expected = [
      /^hot-path SQLite: token check \+ grant lookup, warm cache: p50 [\d.]+ µs/,
      /^hot-path PostgreSQL: (token check|skipped)/,
      /^forward 2026-07-28 tools\/call through \/mcp\/<upstream> vs direct: added p50 -?[\d.]+ ms .* throughput \d+ % of direct at c16/,
      /^forward 2026-07-28 tools\/call through \/mcp vs direct: added p50 -?[\d.]+ ms .* throughput \d+ % of direct at c16/,
      /^forward 2025-11-25 tools\/call through \/mcp\/<upstream> vs direct: added p50 -?[\d.]+ ms .* throughput \d+ % of direct at c16/,
      /^forward 2025-11-25 tools\/call through \/mcp vs direct: added p50 -?[\d.]+ ms .* throughput \d+ % of direct at c16 .*gateway CPU \d+ µs\/call/,
      /^forward 2026-07-28 tools\/call through a bare Node proxy \(the floor\) vs direct: added p50 -?[\d.]+ ms, .* proxy CPU \d+ µs\/call/,
      /^forward 2025-11-25 tools\/call through a bare Node proxy \(the floor\) vs direct: added p50 -?[\d.]+ ms, .* proxy CPU \d+ µs\/call/,
      /^consent-flows: [\d.]+ flows\/s .* bare [\d.]+ flows\/s, ratio \d+ % .*, CPU per flow ratio \d+ %, .* median of 2 rounds, 1 worker, cache \d+ workflows, store SQLite/,
      /^consent-flows: [\d.]+ flows\/s .* bare [\d.]+ flows\/s, ratio \d+ % .*, CPU per flow ratio \d+ %, .* median of 2 rounds, 2 workers, cache \d+ workflows, store PostgreSQL/,
      /^startup: ready [\d.]+ s .* web \+ worker RSS \d+ MiB idle/,
      /^memory: web \+ worker RSS \d+ MiB idle .* \d+ MiB with 20 consent flows pending and 20 grants .*, peak \d+ MiB; /,
      /^load: 20 consent flows in flight \+ 2 \/mcp callers for \d+ s: [\d.]+ flows\/s \(\d+ complete, \d+ errors\), \d+ requests\/s .* RSS before \d+ MiB, peak \d+ MiB, after \d+ MiB/,
    ];
    for (const line of expected) expect(figures.some((figure) => line.test(figure)), `no figure line matches ${line}\n${figures.join('\n')}`).toBe(true);
  });
});

import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { provisionConformance, provisionRunnerNode, runProcess, type ConformanceCheck, type ConformanceVersion } from './runner.js';

/** The project's root, where `scripts/upstream-client.ts` runs. */
const projectDir = resolve(fileURLToPath(new URL('../../', import.meta.url)));

/**
 * The command the suite runs as the client under test: the gateway's way of connecting an upstream
 * (`npm run upstream-client`), started with the project's own Node.
 */
export const UPSTREAM_CLIENT_COMMAND = `${JSON.stringify(process.execPath)} --import tsx scripts/upstream-client.ts`;

/**
 * A client scenario's outcome from its `checks.json`: `failed` when a check failed, `warned` when
 * none failed but one warned (the runner does not count that as passed), `passed` otherwise.
 */
export type ClientScenarioOutcome = 'passed' | 'warned' | 'failed';

/** Arguments of {@link runConformanceClient}. */
export interface RunConformanceClientOptions {
  version: ConformanceVersion;
  /** `suite`: `--suite auth`; `requirements`: exactly the scenarios 2026-07-28 requires (`--requirements`). */
  selection: { suite: 'auth' } | { requirements: '2026-07-28' };
  /** Folder the runner writes its results to; must be absent or empty. */
  outDir: string;
  /** Each client run's limit (the runner's `--timeout`); scenarios run in parallel. Default 120 s. */
  clientTimeoutMs?: number;
  /** Kill the runner after this long. Default 10 minutes. */
  timeoutMs?: number;
}

/** What one `conformance client` run produced. */
export interface ConformanceClientRun {
  scenarios: Record<string, ClientScenarioOutcome>;
  /** The failed and warning checks per scenario, `<status> <check id>: <message>`. */
  findings: Record<string, string[]>;
  summaryLines: string[];
  output: string;
}

/**
 * Runs `conformance client --command <upstream client> …` of a pinned suite version with the
 * pinned Node 22 and reads every scenario's checks.
 */
export async function runConformanceClient(options: RunConformanceClientOptions): Promise<ConformanceClientRun> {
  await mkdir(options.outDir, { recursive: true });
  if ((await readdir(options.outDir)).length > 0) throw new Error(`${options.outDir} is not empty; give each run a folder of its own`);
  const [node, cli] = await Promise.all([provisionRunnerNode(), provisionConformance(options.version)]);
  const args = [cli, 'client', '--command', UPSTREAM_CLIENT_COMMAND, '--timeout', String(options.clientTimeoutMs ?? 120_000), '-o', options.outDir];
  if ('suite' in options.selection) args.push('--suite', options.selection.suite);
  else args.push('--requirements', options.selection.requirements);
  const { output } = await runProcess(node, args, options.timeoutMs ?? 10 * 60_000, projectDir);
  const lines = output.split(/\r?\n/);
  const start = lines.findIndex((line) => line.trim() === '=== SUITE SUMMARY ===');
  const summaryLines = start >= 0 ? lines.slice(start).filter((line) => line.trim() !== '') : [];
  if (summaryLines.length === 0) throw new Error(`conformance ${options.version} printed no suite summary:\n${output}`);
  return { ...(await readClientResults(options.outDir)), summaryLines, output };
}

/** Client results are `<outDir>/<group>/<name>-<ISO time>/checks.json`, the scenario being `<group>/<name>` (or `<name>`). */
const RESULT_DIR = /^(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$/;

async function readClientResults(outDir: string): Promise<{ scenarios: Record<string, ClientScenarioOutcome>; findings: Record<string, string[]> }> {
  const scenarios: Record<string, ClientScenarioOutcome> = {};
  const findings: Record<string, string[]> = {};
  const visit = async (dir: string, prefix: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const match = RESULT_DIR.exec(entry.name);
      const checksFile = join(dir, entry.name, 'checks.json');
      if (!match?.[1] || !existsSync(checksFile)) {
        if (!match) await visit(join(dir, entry.name), `${prefix}${entry.name}/`);
        continue;
      }
      const scenario = `${prefix}${match[1]}`;
      const checks = JSON.parse(await readFile(checksFile, 'utf8')) as ConformanceCheck[];
      const notable = checks.filter((check) => check.status === 'FAILURE' || check.status === 'WARNING');
      scenarios[scenario] = checks.some((check) => check.status === 'FAILURE') ? 'failed' : notable.length > 0 ? 'warned' : 'passed';
      if (notable.length > 0) findings[scenario] = notable.map((check) => `${check.status} ${check.id}: ${check.errorMessage ?? ''}`);
    }
  };
  await visit(outDir, '');
  return { scenarios, findings };
}

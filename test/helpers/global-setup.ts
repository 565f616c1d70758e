import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';
import { ensureProjectTemporalCli } from '../../server/temporal/cli.js';
import { loadTemporalDevSettings, startDevServer } from '../../server/temporal/dev-server.js';
import { ensureWorkflowBundles } from '../../server/temporal/workflow-bundle.js';
import { chromiumAvailable, chromiumPath } from './browser.js';
import { freePort } from './free-port.js';
import { findPostgresBin, startPostgresServer } from './postgres-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** gRPC address of the run's dev server; empty when it could not start (see `temporalUnavailable`). */
    temporalAddress: string;
    temporalNamespace: string;
    /**
     * A second namespace of the same dev server, with the same search attributes, for the gateways
     * of the PostgreSQL round: the same test file runs in both rounds at once, and its workflow ids
     * (`grant:<user>:<upstream>`) would collide in one namespace.
     */
    temporalPostgresNamespace: string;
    temporalCliPath: string;
    /** Why Temporal tests cannot run; empty when they can. */
    temporalUnavailable: string;
    /** Superuser URL of the run's PostgreSQL server; empty when it could not start (see `postgresUnavailable`). */
    postgresUrl: string;
    /** Why PostgreSQL tests cannot run; empty when they can. */
    postgresUnavailable: string;
  }
}

const banner = (text: string) => `\n${'!'.repeat(78)}\n${text}\n${'!'.repeat(78)}\n`;

/**
 * Starts one real PostgreSQL server for the whole test run (test files create their own
 * databases in it). Under CI a missing PostgreSQL fails the run; elsewhere its tests are skipped, loudly.
 */
async function setupPostgres(project: TestProject, ci: boolean): Promise<(() => Promise<void>) | undefined> {
  const unavailable = (reason: string) => {
    if (ci) throw new Error(reason);
    console.warn(banner(`POSTGRESQL TESTS WILL BE SKIPPED (not passed): ${reason}`));
    project.provide('postgresUrl', '');
    project.provide('postgresUnavailable', reason);
    return undefined;
  };
  const bin = findPostgresBin();
  if (!bin) return unavailable('PostgreSQL (initdb, pg_ctl) not found (Debian: apt-get install -y postgresql, or set POSTGRES_BIN)');
  let server;
  try {
    server = await startPostgresServer(bin);
  } catch (error) {
    return unavailable((error as Error).message);
  }
  console.log(`PostgreSQL for this run: ${server.url} (${bin}, data in ${server.dir})`);
  project.provide('postgresUrl', server.url);
  project.provide('postgresUnavailable', '');
  return () => server.stop();
}

/** Creates a namespace on the dev server with the given search attributes; returns its name. */
async function createNamespace(cliPath: string, address: string, namespace: string, searchAttributes: Record<string, string>): Promise<string> {
  const cli = (...args: string[]) => promisify(execFile)(cliPath, ['operator', ...args, '--address', address, '--namespace', namespace]);
  await cli('namespace', 'create', '--retention', '1d');
  // One at a time: given several --name flags, CLI 1.9.1 registers only the first.
  for (const [name, type] of Object.entries(searchAttributes)) await cli('search-attribute', 'create', '--type', type, '--name', name);
  return namespace;
}

/**
 * Starts one real Temporal dev server on free ports, with a temporary database and the search
 * attributes and dynamic config of `temporal-dev.yml`. Under CI a missing CLI fails the run;
 * elsewhere Temporal tests are skipped, loudly.
 */
async function setupTemporal(project: TestProject, ci: boolean): Promise<(() => Promise<void>) | undefined> {
  const settings = await loadTemporalDevSettings();
  let cliPath: string;
  try {
    const cli = await ensureProjectTemporalCli(process.env, (message) => console.log(message));
    cliPath = cli.path;
    console.log(`Temporal CLI ${cli.version} (${cli.source}): ${cli.path}`);
  } catch (error) {
    const reason = (error as Error).message;
    if (ci) throw error;
    console.warn(banner(`TEMPORAL TESTS WILL BE SKIPPED (not passed): ${reason}`));
    project.provide('temporalAddress', '');
    project.provide('temporalNamespace', settings.namespace);
    project.provide('temporalPostgresNamespace', '');
    project.provide('temporalCliPath', '');
    project.provide('temporalUnavailable', reason);
    return undefined;
  }

  await ensureWorkflowBundles();
  const dir = await mkdtemp(path.join(tmpdir(), 'cg-temporal-'));
  const port = await freePort();
  const server = await startDevServer({
    cliPath,
    settings,
    overrides: { port, dbFile: path.join(dir, 'temporal.db'), headless: true },
    logFile: path.join(dir, 'temporal.log'),
  });
  console.log(`Temporal dev server for this run: ${server.address} (pid ${server.process.pid}, database ${dir}/temporal.db)`);
  project.provide('temporalAddress', server.address);
  project.provide('temporalNamespace', server.namespace);
  project.provide('temporalPostgresNamespace', await createNamespace(cliPath, server.address, `${server.namespace}-postgres`, settings.searchAttributes));
  project.provide('temporalCliPath', cliPath);
  project.provide('temporalUnavailable', '');
  return async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  };
}

/**
 * Starts what the whole test run shares: one Temporal dev server and one PostgreSQL server,
 * each stopped at teardown, and checks for Chromium.
 */
export default async function setup(project: TestProject) {
  const ci = process.env.CI === 'true';
  if (!chromiumAvailable()) {
    const reason = `Chromium not found at ${chromiumPath()} (Debian: apt-get install -y chromium, or set CHROMIUM_PATH)`;
    if (ci) throw new Error(reason);
    console.warn(banner(`BROWSER TESTS WILL BE SKIPPED (not passed): ${reason}`));
  }
  const stopPostgres = await setupPostgres(project, ci);
  let stopTemporal: (() => Promise<void>) | undefined;
  try {
    stopTemporal = await setupTemporal(project, ci);
  } catch (error) {
    await stopPostgres?.();
    throw error;
  }
  return async () => {
    await stopTemporal?.();
    await stopPostgres?.();
  };
}

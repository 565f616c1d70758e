import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { ensureProjectTemporalCli } from '../../server/temporal-cli.js';
import { loadTemporalDevSettings, startDevServer } from '../../server/temporal-dev.js';
import { ensureWorkflowBundle } from '../../server/workflow-bundle.js';
import { chromiumAvailable, chromiumPath } from './browser.js';
import { freePort } from './free-port.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** gRPC address of the run's dev server; empty when it could not start (see `temporalUnavailable`). */
    temporalAddress: string;
    temporalNamespace: string;
    temporalCliPath: string;
    /** Why Temporal tests cannot run; empty when they can. */
    temporalUnavailable: string;
  }
}

const banner = (text: string) => `\n${'!'.repeat(78)}\n${text}\n${'!'.repeat(78)}\n`;

/**
 * Starts one real Temporal dev server for the whole test run, on free ports, with a temporary
 * database and the search attributes and dynamic config of `temporal-dev.yml`.
 * Under CI a missing CLI fails the run; elsewhere Temporal tests are skipped, loudly.
 */
export default async function setup(project: TestProject) {
  const settings = await loadTemporalDevSettings();
  const ci = process.env.CI === 'true';
  if (!chromiumAvailable()) {
    const reason = `Chromium not found at ${chromiumPath()} (Debian: apt-get install -y chromium, or set CHROMIUM_PATH)`;
    if (ci) throw new Error(reason);
    console.warn(banner(`BROWSER TESTS WILL BE SKIPPED (not passed): ${reason}`));
  }
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
    project.provide('temporalCliPath', '');
    project.provide('temporalUnavailable', reason);
    return;
  }

  await ensureWorkflowBundle();
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
  project.provide('temporalCliPath', cliPath);
  project.provide('temporalUnavailable', '');

  return async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  };
}

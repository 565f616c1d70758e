import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { GatewayConfig } from '../config.js';
import type { Logger } from '../log.js';
import { ensureTemporalCli } from './cli.js';
import { answers, loadTemporalDevSettings, startDevServer, type DevServer, type TemporalDevOverrides, type TemporalDevSettings } from './dev-server.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops a dev server left running by an earlier start that was killed without cleaning up. */
async function stopLeftover(pidFile: string, log: Logger): Promise<void> {
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!cmdline.includes('start-dev')) return;
  log.warn('stopping a Temporal dev server left over from an earlier run', { pid });
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && alive(pid); i += 1) await new Promise((resolve) => setTimeout(resolve, 100));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

/**
 * The embedded server's per-run settings: the configured ports, and its database in the data
 * folder (`TEMPORAL_DEV_DB_FILE` wins), so two gateways with different data folders never share one.
 */
export function embeddedDevOverrides(config: GatewayConfig, settings: TemporalDevSettings): TemporalDevOverrides {
  return { ...config.temporal.dev, dbFile: config.temporal.dev.dbFile ?? path.resolve(config.dataDir, settings.dbFile) };
}

/**
 * Starts the embedded Temporal dev server described by `temporal-dev.yml`, with its Web UI and
 * its database under the data folder. Finds or installs the CLI first.
 */
export async function startEmbeddedTemporal(config: GatewayConfig, log: Logger): Promise<DevServer> {
  const settings = await loadTemporalDevSettings();
  const cli = await ensureTemporalCli({
    explicitPath: config.temporal.cliPath,
    searchPath: config.temporal.searchPath,
    installDir: config.temporal.cliInstallDir,
    version: settings.cliVersion,
    log: (message) => log.info(message),
  });
  log.info('temporal CLI', { path: cli.path, version: cli.version, found: cli.source });
  const pidFile = path.join(config.dataDir, 'temporal.pid');
  await stopLeftover(pidFile, log);
  const overrides = embeddedDevOverrides(config, settings);
  const address = `${settings.ip}:${overrides.port ?? settings.port}`;
  if (await answers(address, settings.namespace)) {
    throw new Error(
      `a Temporal server already answers on ${address}. Stop it, or point the gateway at it with TEMPORAL_ADDRESS=${address}.`,
    );
  }
  const server = await startDevServer({
    cliPath: cli.path,
    settings,
    overrides,
    logFile: path.join(config.dataDir, 'temporal.log'),
    // Its own process group: Ctrl-C reaches the gateway, which stops the server last.
    detached: true,
  });
  await writeFile(pidFile, String(server.process.pid));
  const stop = server.stop;
  server.stop = async () => {
    await stop();
    await rm(pidFile, { force: true });
  };
  return server;
}

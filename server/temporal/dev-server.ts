import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { createConnection } from 'node:net';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { parse } from 'yaml';
import { projectPath } from '../paths.js';

const searchAttributeTypes = ['Text', 'Keyword', 'Int', 'Double', 'Bool', 'Datetime', 'KeywordList'] as const;
type SearchAttributeType = (typeof searchAttributeTypes)[number];

/** The embedded dev server's settings, as written in `temporal-dev.yml`. */
export interface TemporalDevSettings {
  cliVersion: string;
  ip: string;
  port: number;
  uiPort: number;
  namespace: string;
  /**
   * The SQLite file that keeps the server's state across restarts, as written: relative to the
   * gateway's data folder (`npm start` resolves it there), or absolute.
   */
  dbFile: string;
  /** SQLite pragmas for that file (`--sqlite-pragma name=value`); not applied to an in-memory database. */
  sqlitePragmas: Record<string, string>;
  logLevel: string;
  uiDisableNewsFetch: boolean;
  searchAttributes: Record<string, SearchAttributeType>;
  dynamicConfig: Record<string, unknown>;
}

/** Per-run changes to the settings: tests use free ports, a temporary database and no UI. */
export interface TemporalDevOverrides {
  port?: number;
  uiPort?: number;
  /** A database file, or `null` to keep state in memory only. */
  dbFile?: string | null;
  headless?: boolean;
}

class SettingsError extends Error {
  override name = 'TemporalDevSettingsError';
}

function record(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SettingsError(`${where} must be a mapping`);
  }
  return value as Record<string, unknown>;
}

function str(value: unknown, where: string): string {
  if (typeof value !== 'string' && typeof value !== 'number') throw new SettingsError(`${where} must be a string`);
  return String(value);
}

function port(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw new SettingsError(`${where} must be a port number`);
  }
  return value;
}

/** Reads and validates `temporal-dev.yml` (the single source of truth for the embedded server). */
export async function loadTemporalDevSettings(file = projectPath('temporal-dev.yml')): Promise<TemporalDevSettings> {
  const where = path.basename(file);
  const root = record(parse(await readFile(file, 'utf8')), where);
  const cli = record(root.cli, `${where}: cli`);
  const server = record(root.server, `${where}: server`);
  const searchAttributes: Record<string, SearchAttributeType> = {};
  for (const [name, type] of Object.entries(record(root.searchAttributes ?? {}, `${where}: searchAttributes`))) {
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(name)) throw new SettingsError(`${where}: search attribute name ${name} is not an identifier`);
    if (!searchAttributeTypes.includes(type as SearchAttributeType)) {
      throw new SettingsError(`${where}: search attribute ${name} has type ${String(type)}; use one of ${searchAttributeTypes.join(', ')}`);
    }
    searchAttributes[name] = type as SearchAttributeType;
  }
  return {
    cliVersion: str(cli.version, `${where}: cli.version`),
    ip: str(server.ip ?? '127.0.0.1', `${where}: server.ip`),
    port: port(server.port ?? 7233, `${where}: server.port`),
    uiPort: port(server.uiPort ?? 8233, `${where}: server.uiPort`),
    namespace: str(server.namespace ?? 'default', `${where}: server.namespace`),
    dbFile: str(server.dbFile ?? 'temporal.db', `${where}: server.dbFile`),
    sqlitePragmas: Object.fromEntries(
      Object.entries(record(server.sqlitePragmas ?? {}, `${where}: server.sqlitePragmas`)).map(([name, value]) => {
        if (!/^[a-z_]+$/.test(name)) throw new SettingsError(`${where}: server.sqlitePragmas: ${name} is not a pragma name`);
        const text = str(value, `${where}: server.sqlitePragmas.${name}`);
        if (!/^[A-Za-z0-9_]+$/.test(text)) throw new SettingsError(`${where}: server.sqlitePragmas.${name} must be a single word or number`);
        return [name, text];
      }),
    ),
    logLevel: str(server.logLevel ?? 'warn', `${where}: server.logLevel`),
    uiDisableNewsFetch: server.uiDisableNewsFetch !== false,
    searchAttributes,
    dynamicConfig: record(root.dynamicConfig ?? {}, `${where}: dynamicConfig`),
  };
}

/** Builds the `temporal server start-dev` arguments for the given settings. */
export function devServerArgs(settings: TemporalDevSettings, overrides: TemporalDevOverrides = {}): string[] {
  const args = ['server', 'start-dev', '--ip', settings.ip, '--port', String(overrides.port ?? settings.port)];
  args.push('--namespace', settings.namespace, '--log-level', settings.logLevel);
  const dbFile = overrides.dbFile === undefined ? settings.dbFile : overrides.dbFile;
  // The CLI would resolve a relative name against its working folder, not the data folder.
  if (dbFile !== null && !path.isAbsolute(dbFile)) {
    throw new SettingsError(`the dev server's database ${dbFile} is relative to a data folder; pass an absolute overrides.dbFile`);
  }
  if (dbFile !== null) {
    args.push('--db-filename', dbFile);
    for (const [name, value] of Object.entries(settings.sqlitePragmas)) args.push('--sqlite-pragma', `${name}=${value}`);
  }
  if (overrides.headless) {
    args.push('--headless');
  } else {
    args.push('--ui-port', String(overrides.uiPort ?? settings.uiPort));
    if (settings.uiDisableNewsFetch) args.push('--ui-disable-news-fetch');
  }
  for (const [name, type] of Object.entries(settings.searchAttributes)) args.push('--search-attribute', `${name}=${type}`);
  for (const [key, value] of Object.entries(settings.dynamicConfig)) args.push('--dynamic-config-value', `${key}=${JSON.stringify(value)}`);
  return args;
}

/** A running dev server. */
export interface DevServer {
  address: string;
  namespace: string;
  /** The Web UI, or undefined when started headless. */
  uiUrl: string | undefined;
  process: ChildProcess;
  /** Stops the server (SIGTERM, then SIGKILL after a grace period). */
  stop(): Promise<void>;
}

/** Options for {@link startDevServer}. */
export interface StartDevServerOptions {
  cliPath: string;
  settings: TemporalDevSettings;
  overrides?: TemporalDevOverrides;
  /** File that receives the server's own output; kept in memory (last 64 KiB) when absent. */
  logFile?: string;
  readyTimeoutMs?: number;
  /** Run in its own process group, so a terminal's Ctrl-C does not reach it before the worker stops. */
  detached?: boolean;
}

/** Raised when the dev server does not start; the message carries the end of its output. */
export class DevServerStartError extends Error {
  override name = 'DevServerStartError';
}

/** Starts `temporal server start-dev` and resolves once its frontend answers gRPC calls. */
export async function startDevServer(options: StartDevServerOptions): Promise<DevServer> {
  const { settings } = options;
  const overrides = options.overrides ?? {};
  const args = devServerArgs(settings, overrides);
  const dbFile = overrides.dbFile === undefined ? settings.dbFile : overrides.dbFile;
  if (dbFile) await mkdir(path.dirname(dbFile), { recursive: true });
  if (options.logFile) await mkdir(path.dirname(options.logFile), { recursive: true });

  // With a log file the server writes to it directly, so it never depends on this process's pipes.
  const logFd = options.logFile ? openSync(options.logFile, 'a') : undefined;
  const child = spawn(options.cliPath, args, {
    stdio: logFd === undefined ? ['ignore', 'pipe', 'pipe'] : ['ignore', logFd, logFd],
    detached: options.detached ?? false,
  });
  if (logFd !== undefined) closeSync(logFd);
  let captured = '';
  const capture = (chunk: Buffer) => {
    captured = (captured + chunk.toString('utf8')).slice(-65_536);
  };
  child.stdout?.on('data', capture);
  child.stderr?.on('data', capture);
  const outputTail = async () =>
    options.logFile ? (await readFile(options.logFile, 'utf8').catch(() => '')).slice(-4000) : captured.slice(-4000);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    });
  });
  child.once('error', (error) => capture(Buffer.from(`\n${error.message}\n`)));

  const address = `${settings.ip}:${overrides.port ?? settings.port}`;
  const stop = async () => {
    if (exited) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exit;
    clearTimeout(timer);
  };

  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (exited) {
      throw new DevServerStartError(
        `temporal server start-dev exited (code ${exited.code}, signal ${exited.signal}) before it was ready.\n` +
          `Command: ${options.cliPath} ${args.join(' ')}\n${await outputTail()}`,
      );
    }
    if (await answers(address, settings.namespace)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new DevServerStartError(`temporal server start-dev did not answer on ${address} in time.\n${await outputTail()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const uiUrl = overrides.headless ? undefined : `http://${hostForUrl(settings.ip)}:${overrides.uiPort ?? settings.uiPort}`;
  return { address, namespace: settings.namespace, uiUrl, process: child, stop };
}

function hostForUrl(ip: string): string {
  if (ip === '127.0.0.1' || ip === '0.0.0.0' || ip === '::1' || ip === '::') return 'localhost';
  return ip.includes(':') ? `[${ip}]` : ip;
}

/** True when something accepts TCP connections at `host:port` (a cheap first check before gRPC). */
function listening(address: string): Promise<boolean> {
  const index = address.lastIndexOf(':');
  const host = address.slice(0, index).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(index + 1));
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    socket.setTimeout(1_000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

/** True when a Temporal frontend at `address` serves `namespace`. */
export async function answers(address: string, namespace: string): Promise<boolean> {
  // A closed port fails at once here; the gRPC client would wait out its connect timeout.
  if (!(await listening(address))) return false;
  let connection: Connection | undefined;
  try {
    connection = await Connection.connect({ address, connectTimeout: 1_000 });
    await connection.withDeadline(Date.now() + 2_000, () =>
      connection!.workflowService.describeNamespace({ namespace }),
    );
    return true;
  } catch {
    return false;
  } finally {
    await connection?.close().catch(() => {});
  }
}

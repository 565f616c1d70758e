import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { projectDir } from '../../server/paths.js';
import { answers } from '../../server/temporal/dev-server.js';
import { startConsentFlow } from '../../server/temporal/client.js';
import { chooseIdentity, flowState } from '../../workflows/consent-flow/messages.js';
import { freePort } from '../helpers/free-port.js';
import { temporalUnavailable } from '../helpers/temporal.js';

interface Started {
  child: ChildProcess;
  output: () => string;
  readyMs: number;
}

/**
 * Runs the `npm start` entry point (or `command`) with its own ports and data folder; resolves
 * when it says it is ready.
 */
function startGateway(
  env: Record<string, string>,
  command: [string, ...string[]] = [process.execPath, '--import', 'tsx', 'server/main.ts'],
  options: { detached?: boolean } = {},
): Promise<Started> {
  const started = Date.now();
  const child = spawn(command[0], command.slice(1), {
    cwd: projectDir,
    detached: options.detached ?? false,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready in 30 s:\n${output}`)), 30_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Consent Gateway is ready')) {
        clearTimeout(timer);
        resolve({ child, output: () => output, readyMs: Date.now() - started });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with code ${code} before it was ready:\n${output}`));
    });
  });
}

const alive = (pid: number) => existsSync(`/proc/${pid}`);

/** Every process below `root`, read from /proc. */
async function descendants(root: number): Promise<number[]> {
  const parents = new Map<number, number>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // The command name may hold spaces and parentheses; the parent pid follows its last ')'.
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (parent) parents.set(Number(entry), parent);
  }
  const found: number[] = [];
  const walk = (pid: number) => {
    for (const [child, parent] of parents) if (parent === pid) (found.push(child), walk(child));
  };
  walk(root);
  return found;
}

function stop(child: ChildProcess, signal: NodeJS.Signals): Promise<number | null> {
  return new Promise((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.kill(signal);
  });
}

describe.skipIf(temporalUnavailable)('npm start (server/main.ts)', () => {
  let dir: string;
  let env: Record<string, string>;
  let grpcPort: number;
  let uiPort: number;
  let httpPort: number;
  const children: ChildProcess[] = [];
  /** Processes below a child, killed after the tests even when a test failed before they stopped. */
  const grandchildren: number[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-main-'));
    [grpcPort, uiPort, httpPort] = [await freePort(), await freePort(), await freePort()];
    env = {
      GATEWAY_DATA_DIR: dir,
      GATEWAY_PORT: String(httpPort),
      TEMPORAL_DEV_PORT: String(grpcPort),
      TEMPORAL_DEV_UI_PORT: String(uiPort),
      TEMPORAL_CLI: inject('temporalCliPath'),
    };
  });

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    for (const pid of grandchildren) if (alive(pid)) process.kill(pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('serves health and the Web UI, stops cleanly, and keeps its flows across a restart', async () => {
    const first = await startGateway(env);
    children.push(first.child);
    expect(first.output()).toContain(`Temporal Web UI:  http://localhost:${uiPort}/namespaces/default/workflows`);
    expect(first.output()).toContain(`MCP endpoint:     http://localhost:${httpPort}/mcp`);

    // The dev server's database, log and pid file follow GATEWAY_DATA_DIR.
    const devServerPid = Number(await readFile(path.join(dir, 'temporal.pid'), 'utf8'));
    const devServerArgs = (await readFile(`/proc/${devServerPid}/cmdline`, 'utf8')).split('\0');
    expect(devServerArgs[devServerArgs.indexOf('--db-filename') + 1]).toBe(path.join(dir, 'temporal.db'));
    expect(existsSync(path.join(dir, 'temporal.db'))).toBe(true);
    // In WAL mode (temporal-dev.yml): the log of commits beside the database.
    expect(existsSync(path.join(dir, 'temporal.db-wal'))).toBe(true);
    expect(existsSync(path.join(dir, 'temporal.log'))).toBe(true);

    const health = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', temporal: { ok: true }, store: { ok: true }, worker: { state: 'RUNNING' } });
    expect((await fetch(`http://127.0.0.1:${uiPort}/`)).status).toBe(200);

    const connection = await Connection.connect({ address: `127.0.0.1:${grpcPort}` });
    const client = new Client({ connection });
    const flowId = randomUUID();
    const handle = await startConsentFlow(client, 'consent-gateway', {
      flowId,
      client: { clientId: 'restart-client', clientName: null, redirectHost: null, registration: 'static' },
      upstreams: [],
      scopes: ['mcp:tools'],
      ttlMs: 600_000,
    });
    await handle.executeUpdate(chooseIdentity, { args: [{ userId: 'ivan', source: 'dev' }] });
    await connection.close();

    expect(await stop(first.child, 'SIGINT')).toBe(0);
    expect(first.output()).toContain('stopped');
    expect(await answers(`127.0.0.1:${grpcPort}`, 'default')).toBe(false);
    expect(existsSync(path.join(dir, 'temporal.pid'))).toBe(false);

    const second = await startGateway(env);
    children.push(second.child);
    const again = await Connection.connect({ address: `127.0.0.1:${grpcPort}` });
    const state = await new Client({ connection: again }).workflow.getHandle(`consent:${flowId}`).query(flowState);
    expect(state).toMatchObject({ step: 'services', userId: 'ivan' });
    await again.close();
    expect((await fetch(`http://127.0.0.1:${httpPort}/healthz`)).status).toBe(200);
    expect(await stop(second.child, 'SIGTERM')).toBe(0);
  }, 90_000);

  it('stops a dev server left behind by a start that was killed', async () => {
    const first = await startGateway(env);
    children.push(first.child);
    expect(await stop(first.child, 'SIGKILL')).toBe(null);
    expect(await answers(`127.0.0.1:${grpcPort}`, 'default')).toBe(true);
    const second = await startGateway(env);
    children.push(second.child);
    expect(second.output()).toContain('stopping a Temporal dev server left over from an earlier run');
    expect((await fetch(`http://127.0.0.1:${httpPort}/healthz`)).status).toBe(200);
    expect(await stop(second.child, 'SIGTERM')).toBe(0);
    expect(await answers(`127.0.0.1:${grpcPort}`, 'default')).toBe(false);
  }, 90_000);

  it('stops the server and the Temporal dev server when only the npm process gets SIGTERM', async () => {
    // Empty counts as unset for the launcher (scripts/run-server.sh), whatever this process's environment holds.
    const npm = await startGateway({ ...env, MALLOC_ARENA_MAX: '' }, ['npm', 'start']);
    children.push(npm.child);
    const below = await descendants(npm.child.pid!);
    grandchildren.push(...below);
    const devServerPid = Number(await readFile(path.join(dir, 'temporal.pid'), 'utf8'));
    expect(below).toContain(devServerPid);
    expect(below.length).toBeGreaterThan(1);
    // The gateway runs with glibc's arenas bounded, V8's heaps kept near what is live and its own source maps preloaded (README, "Memory").
    const commandLines = await Promise.all(below.map(async (pid) => ({ pid, command: (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0') })));
    const gateway = commandLines.filter(({ command }) => command.includes('.build/server/main.js'));
    expect(gateway).toHaveLength(1);
    const environment = (await readFile(`/proc/${gateway[0]!.pid}/environ`, 'utf8')).split('\0');
    expect(environment).toContain('MALLOC_ARENA_MAX=2');
    // V8's heaps grown by half of what is live and their young generation bounded (scripts/node-flags),
    // and source maps for its own code only, not every dependency's (scripts/source-maps.mjs).
    expect(gateway[0]!.command.slice(1, 5)).toEqual(['--heap-growing-percent=50', '--max-semi-space-size=16', '--import', './scripts/source-maps.mjs']);
    expect(gateway[0]!.command).not.toContain('--enable-source-maps');

    // As a process manager does: the signal goes to npm's pid alone, not to its process group.
    process.kill(npm.child.pid!, 'SIGTERM');
    await new Promise((resolve) => npm.child.once('exit', resolve));
    expect(npm.output()).toContain('stopped');
    expect(below.filter(alive)).toEqual([]);
    expect(await answers(`127.0.0.1:${grpcPort}`, 'default')).toBe(false);
    await expect(fetch(`http://127.0.0.1:${httpPort}/healthz`)).rejects.toThrow();
  }, 90_000);

  it('stops cleanly on one Ctrl-C at a terminal running npm start, which npm passes on a second time', async () => {
    // Its own process group, as a terminal's foreground job: a Ctrl-C signals the whole group.
    const npm = await startGateway(env, ['npm', 'start'], { detached: true });
    children.push(npm.child);
    const below = await descendants(npm.child.pid!);
    grandchildren.push(...below);
    process.kill(-npm.child.pid!, 'SIGINT');
    await new Promise((resolve) => npm.child.once('exit', resolve));
    expect(npm.output()).toContain('stopped');
    expect(npm.output()).not.toContain('forced exit');
    expect(below.filter(alive)).toEqual([]);
    expect(await answers(`127.0.0.1:${grpcPort}`, 'default')).toBe(false);
  }, 90_000);

  it('still stops the Temporal dev server when the reader of its output has gone before the signal', async () => {
    const gateway = await startGateway(env);
    children.push(gateway.child);
    const devServerPid = Number(await readFile(path.join(dir, 'temporal.pid'), 'utf8'));
    grandchildren.push(devServerPid);
    // Its logs of the stop now meet a closed pipe (EPIPE).
    gateway.child.stdout!.destroy();
    gateway.child.stderr!.destroy();
    expect(await stop(gateway.child, 'SIGTERM')).toBe(0);
    expect(alive(devServerPid)).toBe(false);
    expect(await answers(`127.0.0.1:${grpcPort}`, 'default')).toBe(false);
  }, 90_000);

  it('exits with a clear message when its config is invalid', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
      cwd: projectDir,
      env: { ...process.env, ...env, GATEWAY_PORT: 'not-a-port' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise((resolve) => child.once('exit', resolve));
    expect(code).toBe(78);
    expect(stderr).toContain('Configuration error: GATEWAY_PORT must be a port number (0-65535)\n');
    expect(stderr).not.toContain(' at ');
  });
});

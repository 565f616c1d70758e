import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port.js';

const run = promisify(execFile);

/** A PostgreSQL server of the test run's own, in a temporary folder. */
export interface PostgresServer {
  /** Superuser URL of the `postgres` database, for creating the test databases. */
  url: string;
  dir: string;
  stop(): Promise<void>;
}

/**
 * The folder holding `initdb` and `pg_ctl`: `$POSTGRES_BIN`, else Debian's
 * `/usr/lib/postgresql/<newest>/bin`, else the `PATH`. Undefined when none has them.
 */
export function findPostgresBin(env: Record<string, string | undefined> = process.env): string | undefined {
  const has = (dir: string) => existsSync(path.join(dir, 'initdb')) && existsSync(path.join(dir, 'pg_ctl'));
  if (env.POSTGRES_BIN) return has(env.POSTGRES_BIN) ? env.POSTGRES_BIN : undefined;
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    const versions = readdirSync(debian)
      .filter((name) => /^\d+$/.test(name))
      .sort((a, b) => Number(b) - Number(a));
    for (const version of versions) if (has(path.join(debian, version, 'bin'))) return path.join(debian, version, 'bin');
  }
  return (env.PATH ?? '').split(path.delimiter).find((dir) => dir !== '' && has(dir));
}

/**
 * Starts a throwaway PostgreSQL: `initdb` with trust authentication on loopback, `pg_ctl start`
 * on a free port, durability switched off (the data dies with the run). `initdb` refuses to run
 * as root, so as root both run as the `postgres` user, in a folder that user owns.
 */
export async function startPostgresServer(bin: string): Promise<PostgresServer> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cg-postgres-'));
  const data = path.join(dir, 'data');
  const asRoot = userInfo().uid === 0;
  const command = async (file: string, args: string[]) => {
    const [program, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', path.join(bin, file), ...args]] : [path.join(bin, file), args];
    await run(program, argv, { cwd: dir });
  };
  try {
    if (asRoot) {
      const { stdout } = await run('id', ['-u', 'postgres']).catch(() => {
        throw new Error('running as root, and there is no "postgres" user to run PostgreSQL as (Debian: apt-get install -y postgresql creates it)');
      });
      const uid = Number(stdout.trim());
      const { stdout: gidOut } = await run('id', ['-g', 'postgres']);
      await chown(dir, uid, Number(gidOut.trim()));
    }
    await command('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C']);
    const port = await freePort();
    const options = [
      `-p ${port}`,
      `-k ${dir}`,
      '-c listen_addresses=127.0.0.1',
      '-c fsync=off',
      '-c synchronous_commit=off',
      '-c full_page_writes=off',
      // Test files run in parallel, each with gateways holding a pool.
      '-c max_connections=400',
    ].join(' ');
    await command('pg_ctl', ['-D', data, '-o', options, '-l', path.join(dir, 'postgres.log'), '-w', 'start']);
    return {
      url: `postgres://postgres@127.0.0.1:${port}/postgres`,
      dir,
      async stop() {
        await command('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']).catch(() => {});
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    const log = await readFile(path.join(dir, 'postgres.log'), 'utf8').catch(() => '');
    await rm(dir, { recursive: true, force: true });
    const detail = (error as { stderr?: string }).stderr?.trim() || (error as Error).message;
    throw new Error(`PostgreSQL did not start: ${detail}${log ? `\n${log.slice(-2000)}` : ''}`);
  }
}

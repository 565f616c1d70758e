import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';

/** Why PostgreSQL-backed tests cannot run here ('' when they can); use with `describe.skipIf`. */
export const postgresUnavailable = inject('postgresUnavailable');

/**
 * Creates an empty database on the run's PostgreSQL server and returns its URL. Each caller gets
 * its own, as each SQLite test gets its own file; the server and all its databases go at teardown.
 */
export async function createTestDatabase(): Promise<string> {
  if (postgresUnavailable) throw new Error(`PostgreSQL is unavailable in this run: ${postgresUnavailable}`);
  const admin = new URL(inject('postgresUrl'));
  const name = `cg_${randomBytes(8).toString('hex')}`;
  const client = new pg.Client({ connectionString: admin.href });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  admin.pathname = `/${name}`;
  return admin.href;
}

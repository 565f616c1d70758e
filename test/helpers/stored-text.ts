import { readFile } from 'node:fs/promises';
import pg from 'pg';
import type { StoreConfig } from '../../server/config.js';

/**
 * Everything the store holds, as text: the SQLite file and its write-ahead log byte for byte, or
 * every row of every PostgreSQL table. Tests search it for secrets that must never be stored in clear.
 */
export async function storedText(config: StoreConfig): Promise<string> {
  if (config.backend === 'sqlite') {
    const files = await Promise.all(['', '-wal'].map((suffix) => readFile(`${config.path}${suffix}`).catch(() => Buffer.alloc(0))));
    return Buffer.concat(files).toString('latin1');
  }
  const client = new pg.Client({ connectionString: config.url });
  await client.connect();
  try {
    const tables = await client.query<{ name: string }>("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1");
    const dumps = await Promise.all(
      tables.rows.map(async ({ name }) => (await client.query<{ row: string }>(`SELECT t::text AS row FROM "${name}" t`)).rows.map((r) => r.row).join('\n')),
    );
    return dumps.join('\n');
  } finally {
    await client.end();
  }
}

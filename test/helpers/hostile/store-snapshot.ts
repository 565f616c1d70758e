import { createHash } from 'node:crypto';
import pg from 'pg';
import sqlite3 from 'sqlite3';
import type { StoreConfig } from '../../../server/config.js';

/**
 * Tables left out of every comparison: the registration rate limiter counts every attempt at
 * `/reg`, refused ones included, by design (a flood of bad registrations must count too).
 */
const uncompared = new Set(['rate_limit_hits', 'schema_migrations', 'sqlite_sequence']);

/** Every row of every compared table, as a hash per row (a multiset: equal rows count twice). */
export type StoreSnapshot = Map<string, Map<string, number>>;

/** How two snapshots differ, table by table: rows only in the later one, and rows only in the earlier one. */
export interface StoreDiff {
  added: Record<string, number>;
  removed: Record<string, number>;
}

/** Reads store snapshots through a connection of its own (read-only for SQLite). */
export interface StoreReader {
  snapshot(): Promise<StoreSnapshot>;
  close(): Promise<void>;
}

const rowHash = (row: unknown) => createHash('sha256').update(JSON.stringify(row)).digest('base64url');

function count(rows: unknown[]): Map<string, number> {
  const hashes = new Map<string, number>();
  for (const row of rows) {
    const hash = rowHash(row);
    hashes.set(hash, (hashes.get(hash) ?? 0) + 1);
  }
  return hashes;
}

/** Opens a {@link StoreReader} on the store a gateway runs on. */
export async function openStoreReader(config: StoreConfig): Promise<StoreReader> {
  if (config.backend === 'sqlite') {
    const db = await new Promise<sqlite3.Database>((resolve, reject) => {
      const opened = new sqlite3.Database(config.path, sqlite3.OPEN_READONLY, (error) => (error ? reject(error) : resolve(opened)));
    });
    const all = <T>(sql: string) => new Promise<T[]>((resolve, reject) => db.all(sql, (error, rows) => (error ? reject(error) : resolve(rows as T[]))));
    return {
      async snapshot() {
        const tables = await all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
        const snapshot: StoreSnapshot = new Map();
        for (const { name } of tables) if (!uncompared.has(name)) snapshot.set(name, count(await all(`SELECT * FROM "${name}"`)));
        return snapshot;
      },
      close: () => new Promise((resolve, reject) => db.close((error) => (error ? reject(error) : resolve()))),
    };
  }
  const client = new pg.Client({ connectionString: config.url });
  await client.connect();
  return {
    async snapshot() {
      const tables = await client.query<{ name: string }>("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1");
      const snapshot: StoreSnapshot = new Map();
      for (const { name } of tables.rows) if (!uncompared.has(name)) snapshot.set(name, count((await client.query(`SELECT * FROM "${name}"`)).rows));
      return snapshot;
    },
    close: () => client.end(),
  };
}

/** What changed from `before` to `after`; empty records when nothing did. */
export function diffSnapshots(before: StoreSnapshot, after: StoreSnapshot): StoreDiff {
  const diff: StoreDiff = { added: {}, removed: {} };
  const surplus = (from: Map<string, number>, to: Map<string, number>) => {
    let extra = 0;
    for (const [hash, n] of from) extra += Math.max(0, n - (to.get(hash) ?? 0));
    return extra;
  };
  for (const table of new Set([...before.keys(), ...after.keys()])) {
    const was = before.get(table) ?? new Map<string, number>();
    const is = after.get(table) ?? new Map<string, number>();
    const added = surplus(is, was);
    const removed = surplus(was, is);
    if (added) diff.added[table] = added;
    if (removed) diff.removed[table] = removed;
  }
  return diff;
}

/** A snapshot's row count per table, for the report. */
export function rowCounts(snapshot: StoreSnapshot): Record<string, number> {
  return Object.fromEntries([...snapshot].map(([table, rows]) => [table, [...rows.values()].reduce((a, b) => a + b, 0)]));
}

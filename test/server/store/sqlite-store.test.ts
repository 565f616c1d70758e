import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sqlite3 from 'sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrations } from '../../../server/store/migrations.js';
import { migrate, SqliteDatabase, SqliteStore } from '../../../server/store/sqlite-store.js';

// What every backend must do is in store-contract.test.ts; this file holds what is SQLite's own.

let dir: string;
let file: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cg-store-'));
  file = path.join(dir, 'nested', 'gateway.sqlite');
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function rawQuery<T>(sql: string): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(file, sqlite3.OPEN_READONLY, (openError) => {
      if (openError) return reject(openError);
      db.all(sql, (error, rows) => db.close(() => (error ? reject(error) : resolve(rows as T[]))));
    });
  });
}

describe('SqliteStore', () => {
  it('creates the file, and its folder, in WAL mode', async () => {
    const store = await SqliteStore.open(file);
    await store.close();
    expect(await rawQuery<{ journal_mode: string }>('PRAGMA journal_mode')).toEqual([{ journal_mode: 'wal' }]);
  });

  it('gives upstream tokens stored before migration 5 version 1, and keeps the version written since', async () => {
    const db = await SqliteDatabase.open(file.replace('nested/', ''));
    await migrate(db, migrations.filter((migration) => migration.version < 5));
    await db.run(
      `INSERT INTO upstream_tokens (user_id, upstream, access_token, refresh_token, token_type, scopes, expires_at, status, connected_at, last_used_at, updated_at)
       VALUES ('alice', 'notion', 'v1.a.b.c', NULL, 'bearer', '[]', 100, 'connected', 't0', NULL, 't0')`,
    );
    await db.close();
    const store = await SqliteStore.open(file.replace('nested/', ''));
    const before = await store.getUpstreamTokens('alice', 'notion');
    expect(before?.version).toBe(1);
    await store.saveUpstreamTokens({ ...before!, version: 2, expiresAt: 200, updatedAt: 't1' });
    expect(await store.getUpstreamTokens('alice', 'notion')).toEqual({ ...before, version: 2, expiresAt: 200, updatedAt: 't1' });
    await store.close();
  });

  it('reads what another connection wrote after this one read a row with the same statement', async () => {
    const reader = await SqliteStore.open(file);
    const writer = await SqliteStore.open(file);
    const change = (flowId: string) => ({ flowId, sequence: 1, clientId: 'c1', userId: 'alice', upstreams: [], status: 'identifying' as const, at: 't0' });
    await writer.recordFlowChange(change('first'));
    expect((await reader.getFlow('first'))?.userId).toBe('alice');
    await writer.recordFlowChange(change('second'));
    expect((await reader.getFlow('second'))?.userId).toBe('alice');
    await writer.close();
    await reader.close();
  });

  it('answers SQL that does not prepare with its error each time, and goes on serving other statements', async () => {
    const db = await SqliteDatabase.open(file.replace('nested/', ''));
    for (let attempt = 0; attempt < 2; attempt += 1) {
      await expect(db.run('SELEC 1')).rejects.toThrow(/syntax error/);
      await expect(db.all('SELECT * FROM no_such_table')).rejects.toThrow(/no such table/);
      await expect(db.run('INSERT INTO no_such_table (n) VALUES (?)', [7])).rejects.toThrow(/no such table/);
    }
    expect(await db.get<{ one: number }>('SELECT ? AS one', [1])).toEqual({ one: 1 });
    // A table created since makes the same SQL prepare.
    await db.exec('CREATE TABLE no_such_table (n INTEGER)');
    await db.run('INSERT INTO no_such_table (n) VALUES (?)', [7]);
    expect(await db.all('SELECT * FROM no_such_table')).toEqual([{ n: 7 }]);
    await db.close();
  });

  it('runs more distinct statements than it keeps prepared, and closes', async () => {
    const db = await SqliteDatabase.open(file.replace('nested/', ''));
    // All at once, so statements are dropped while calls on them are still queued.
    const answers = await Promise.all(Array.from({ length: 600 }, (_, i) => db.all<{ n: number }>(`SELECT ? + ${i} AS n`, [1])));
    expect(answers).toEqual(Array.from({ length: 600 }, (_, i) => [{ n: i + 1 }]));
    // The first ones were dropped: prepared again, they still answer.
    expect(await db.all<{ n: number }>('SELECT ? + 0 AS n', [5])).toEqual([{ n: 5 }]);
    await db.transaction(async (tx) => tx.run('CREATE TABLE t (n INTEGER)'));
    expect((await db.run('INSERT INTO t (n) VALUES (1)')).changes).toBe(1);
    await expect(db.close()).resolves.toBeUndefined();
  });

  it('opens a new file from three connections at once, each reading what one of them wrote', async () => {
    // Switching to WAL finds the file busy while another connection opens it; SQLite does not wait there.
    for (let round = 0; round < 60; round += 1) {
      const roundFile = path.join(dir, `race-${round}.sqlite`);
      const stores = await Promise.all(Array.from({ length: 3 }, () => SqliteStore.open(roundFile)));
      await stores[0]!.recordFlowChange({ flowId: 'flow-1', sequence: 1, clientId: 'c1', userId: 'alice', upstreams: [], status: 'identifying', at: 't0' });
      for (const store of stores) expect((await store.getFlow('flow-1'))?.userId).toBe('alice');
      await Promise.all(stores.map((store) => store.close()));
    }
  });
});

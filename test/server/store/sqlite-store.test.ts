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
});

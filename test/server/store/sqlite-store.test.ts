import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sqlite3 from 'sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrations } from '../../../server/store/migrations.js';
import { migrate, SqliteDatabase, SqliteStore } from '../../../server/store/sqlite-store.js';

const latest = Math.max(...migrations.map((m) => m.version));
import type { FlowChange } from '../../../server/store/store.js';

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

const change = (overrides: Partial<FlowChange> = {}): FlowChange => ({
  flowId: 'flow-1',
  sequence: 1,
  clientId: 'client-1',
  userId: null,
  upstreams: [],
  status: 'identifying',
  at: '2026-01-01T00:00:00.000Z',
  ...overrides,
});

describe('SqliteStore', () => {
  it('creates the file in WAL mode with the schema at the latest version', async () => {
    const store = await SqliteStore.open(file);
    expect(await store.health()).toEqual({ ok: true, schemaVersion: latest });
    await store.close();
    expect(await rawQuery<{ journal_mode: string }>('PRAGMA journal_mode')).toEqual([{ journal_mode: 'wal' }]);
    expect(await rawQuery<{ version: number; name: string }>('SELECT version, name FROM schema_migrations ORDER BY version')).toEqual(
      migrations.map(({ version, name }) => ({ version, name })),
    );
  });

  it('keeps its data across a close and reopen, without applying migrations twice', async () => {
    const first = await SqliteStore.open(file);
    await first.recordFlowChange(change());
    await first.close();
    const second = await SqliteStore.open(file);
    expect(await second.getFlow('flow-1')).toMatchObject({ flowId: 'flow-1', status: 'identifying' });
    expect(await rawQuery('SELECT version FROM schema_migrations')).toHaveLength(migrations.length);
    await second.close();
  });

  it('ignores a replayed change with the same sequence (a retried activity)', async () => {
    const store = await SqliteStore.open(file);
    expect(await store.recordFlowChange(change())).toEqual({ applied: true });
    expect(await store.recordFlowChange(change())).toEqual({ applied: false });
    expect(await store.listAudit({ flowId: 'flow-1' })).toHaveLength(1);
    await store.close();
  });

  it('never moves a flow back to an older sequence', async () => {
    const store = await SqliteStore.open(file);
    await store.recordFlowChange(change({ sequence: 2, status: 'choosing_services', userId: 'alice' }));
    await store.recordFlowChange(change({ sequence: 1, status: 'identifying' }));
    expect(await store.getFlow('flow-1')).toMatchObject({ status: 'choosing_services', userId: 'alice' });
    expect((await store.listAudit({ flowId: 'flow-1' })).map((a) => a.event)).toEqual(['flow.choosing_services', 'flow.identifying']);
    await store.close();
  });

  it('keeps concurrent changes apart (transactions are serialised on one connection)', async () => {
    const store = await SqliteStore.open(file);
    await Promise.all(
      Array.from({ length: 50 }, (_, i) => store.recordFlowChange(change({ flowId: `flow-${i}`, sequence: 1 }))),
    );
    expect(await rawQuery<{ n: number }>('SELECT COUNT(*) AS n FROM flows')).toEqual([{ n: 50 }]);
    expect(await rawQuery<{ n: number }>('SELECT COUNT(*) AS n FROM audit_log')).toEqual([{ n: 50 }]);
    await store.close();
  });

  it('reports unhealthy once closed', async () => {
    const store = await SqliteStore.open(file);
    await store.close();
    expect(await store.health()).toEqual({ ok: false, error: 'store is closed' });
  });

  it('rolls back a failing migration and names it', async () => {
    const db = await SqliteDatabase.open(path.join(dir, 'm.sqlite'));
    const error = await migrate(db, [
      { version: 1, name: 'good', sql: 'CREATE TABLE a (x INTEGER);' },
      { version: 2, name: 'broken', sql: 'CREATE TABLE b (y INTEGER); THIS IS NOT SQL;' },
    ]).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/^migration 2 \(broken\) failed: /);
    expect(await db.all('SELECT version FROM schema_migrations')).toEqual([{ version: 1 }]);
    expect(await db.all("SELECT name FROM sqlite_master WHERE name = 'b'")).toEqual([]);
    await db.close();
  });

  it('gives upstream tokens stored before migration 5 version 1, and keeps the version written since', async () => {
    const older = path.join(dir, 'v4.sqlite');
    const db = await SqliteDatabase.open(older);
    await migrate(db, migrations.filter((migration) => migration.version < 5));
    await db.run(
      `INSERT INTO upstream_tokens (user_id, upstream, access_token, refresh_token, token_type, scopes, expires_at, status, connected_at, last_used_at, updated_at)
       VALUES ('alice', 'notion', 'v1.a.b.c', NULL, 'bearer', '[]', 100, 'connected', 't0', NULL, 't0')`,
    );
    await db.close();
    const store = await SqliteStore.open(older);
    const before = await store.getUpstreamTokens('alice', 'notion');
    expect(before?.version).toBe(1);
    await store.saveUpstreamTokens({ ...before!, version: 2, expiresAt: 200, updatedAt: 't1' });
    expect(await store.getUpstreamTokens('alice', 'notion')).toEqual({ ...before, version: 2, expiresAt: 200, updatedAt: 't1' });
    await store.close();
  });

  it('refuses a database from a newer gateway', async () => {
    const db = await SqliteDatabase.open(path.join(dir, 'new.sqlite'));
    await migrate(db, [{ version: 1, name: 'a', sql: 'CREATE TABLE a (x INTEGER);' }, { version: 2, name: 'b', sql: 'CREATE TABLE b (x INTEGER);' }]);
    await expect(migrate(db, [{ version: 1, name: 'a', sql: '' }])).rejects.toThrow('the database schema is version 2, newer than this gateway knows (1); upgrade the gateway');
    await db.close();
  });
});

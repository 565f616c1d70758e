import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import sqlite3 from 'sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { StoreConfig } from '../../../server/config.js';
import { migrations as sqliteMigrations, type Migration } from '../../../server/store/migrations.js';
import { openStore } from '../../../server/store/open-store.js';
import { postgresMigrations } from '../../../server/store/postgres-migrations.js';
import { createPool, migratePostgres } from '../../../server/store/postgres-store.js';
import { migrate, SqliteDatabase } from '../../../server/store/sqlite-store.js';
import type { FlowChange, GatewayStore, UpstreamAuthorizationRecord, UpstreamTokenRecord } from '../../../server/store/store.js';
import { createTestDatabase, postgresUnavailable } from '../../helpers/postgres.js';

/** What the contract needs to know of a backend beyond the store itself. */
interface Backend {
  name: string;
  skip: string;
  migrations: readonly Migration[];
  /** A store location nobody has used. */
  fresh(): Promise<StoreConfig>;
  /** Applies `migrations` to the location with the backend's own migration runner. */
  migrateRaw(config: StoreConfig, migrations: readonly Migration[]): Promise<number>;
  /** Reads rows straight from the database, around the store. */
  query<T>(config: StoreConfig, sql: string): Promise<T[]>;
}

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

const sqlite: Backend = {
  name: 'sqlite',
  skip: '',
  migrations: sqliteMigrations,
  async fresh() {
    const dir = await mkdtemp(path.join(tmpdir(), 'cg-store-'));
    dirs.push(dir);
    const file = path.join(dir, 'gateway.sqlite');
    return { backend: 'sqlite', url: `sqlite:${file}`, path: file };
  },
  async migrateRaw(config, migrations) {
    const db = await SqliteDatabase.open((config as { path: string }).path);
    try {
      return await migrate(db, migrations);
    } finally {
      await db.close();
    }
  },
  query(config, sql) {
    return new Promise((resolve, reject) => {
      const db = new sqlite3.Database((config as { path: string }).path, sqlite3.OPEN_READONLY, (openError) => {
        if (openError) return reject(openError);
        db.all(sql, (error, rows) => db.close(() => (error ? reject(error) : resolve(rows as never[]))));
      });
    });
  },
};

const postgres: Backend = {
  name: 'postgres',
  skip: postgresUnavailable,
  migrations: postgresMigrations,
  async fresh() {
    return { backend: 'postgres', url: await createTestDatabase(), poolSize: 4 };
  },
  async migrateRaw(config, migrations) {
    const pool = createPool(config.url, { poolSize: 1 });
    try {
      return await migratePostgres(pool, migrations);
    } finally {
      await pool.end();
    }
  },
  async query<T>(config: StoreConfig, sql: string) {
    const client = new pg.Client({ connectionString: config.url });
    await client.connect();
    try {
      return (await client.query(sql)).rows as T[];
    } finally {
      await client.end();
    }
  },
};

if (postgresUnavailable) console.warn(`\n!!! The PostgreSQL half of the store contract is SKIPPED: ${postgresUnavailable}\n`);

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

const tokens = (overrides: Partial<UpstreamTokenRecord> = {}): UpstreamTokenRecord => ({
  userId: 'alice',
  upstream: 'notion',
  accessToken: 'v1.sealed-access',
  refreshToken: 'v1.sealed-refresh',
  tokenType: 'bearer',
  scopes: ['read', 'write'],
  expiresAt: 1_900_000_000,
  status: 'connected',
  version: 1,
  connectedAt: '2026-01-01T00:00:00.000Z',
  lastUsedAt: null,
  updatedAt: '2026-01-01T00:00:00.000Z',
  ...overrides,
});

const authorization = (overrides: Partial<UpstreamAuthorizationRecord> = {}): UpstreamAuthorizationRecord => ({
  stateHash: 'state-hash-1',
  flowId: 'flow-1',
  upstream: 'notion',
  userId: 'alice',
  codeVerifier: 'v1.sealed-verifier',
  redirectUri: 'http://127.0.0.1:1/oauth/upstream/callback',
  code: null,
  callback: null,
  expiresAt: 2_000,
  usedAt: null,
  ...overrides,
});

const oauthRecord = (payload: Record<string, unknown>, overrides: { expiresAt?: number | null; grantId?: string | null; sessionUid?: string | null; userCode?: string | null } = {}) => ({
  payload: JSON.stringify(payload),
  expiresAt: null,
  grantId: null,
  sessionUid: null,
  userCode: null,
  ...overrides,
});

describe.each([sqlite, postgres])('the store contract on $name', (backend) => {
  const open: GatewayStore[] = [];
  const openStoreAt = async (config: StoreConfig) => {
    const store = await openStore(config);
    open.push(store);
    return store;
  };
  const freshStore = async () => openStoreAt(await backend.fresh());
  afterEach(async () => {
    await Promise.all(open.splice(0).map((store) => store.close()));
  });

  describe.skipIf(Boolean(backend.skip))('schema', () => {
    it('opens a new database with the schema at the latest version', async () => {
      const config = await backend.fresh();
      const store = await openStoreAt(config);
      const latest = Math.max(...backend.migrations.map((m) => m.version));
      expect(await store.health()).toEqual({ ok: true, schemaVersion: latest });
      expect(await backend.query(config, 'SELECT version, name FROM schema_migrations ORDER BY version')).toEqual(
        backend.migrations.map(({ version, name }) => ({ version, name })),
      );
    });

    it('keeps its data across a close and reopen, without applying migrations twice', async () => {
      const config = await backend.fresh();
      const first = await openStore(config);
      await first.recordFlowChange(change());
      await first.close();
      const second = await openStoreAt(config);
      expect(await second.getFlow('flow-1')).toMatchObject({ flowId: 'flow-1', status: 'identifying' });
      expect(await backend.query(config, 'SELECT version FROM schema_migrations')).toHaveLength(backend.migrations.length);
    });

    it('applies each migration once when two processes open a new database together', async () => {
      const config = await backend.fresh();
      const [a, b] = await Promise.all([openStoreAt(config), openStoreAt(config)]);
      await a.recordFlowChange(change());
      expect(await b.getFlow('flow-1')).toMatchObject({ flowId: 'flow-1' });
      expect(await backend.query(config, 'SELECT version FROM schema_migrations')).toHaveLength(backend.migrations.length);
    });

    it('rolls back a failing migration and names it', async () => {
      const config = await backend.fresh();
      const error = await backend
        .migrateRaw(config, [
          { version: 1, name: 'good', sql: 'CREATE TABLE a (x INTEGER);' },
          { version: 2, name: 'broken', sql: 'CREATE TABLE b (y INTEGER); THIS IS NOT SQL;' },
        ])
        .catch((e: unknown) => e);
      expect((error as Error).message).toMatch(/^migration 2 \(broken\) failed: /);
      expect(await backend.query(config, 'SELECT version FROM schema_migrations')).toEqual([{ version: 1 }]);
      expect(await backend.query(config, 'SELECT x FROM a')).toEqual([]);
      await expect(backend.query(config, 'SELECT y FROM b')).rejects.toThrow(/b/);
    });

    it('refuses a database from a newer gateway', async () => {
      const config = await backend.fresh();
      await backend.migrateRaw(config, [{ version: 1, name: 'a', sql: 'CREATE TABLE a (x INTEGER);' }, { version: 2, name: 'b', sql: 'CREATE TABLE b (x INTEGER);' }]);
      await expect(backend.migrateRaw(config, [{ version: 1, name: 'a', sql: '' }])).rejects.toThrow(
        'the database schema is version 2, newer than this gateway knows (1); upgrade the gateway',
      );
    });

    it('reports unhealthy once closed', async () => {
      const store = await openStore(await backend.fresh());
      await store.close();
      expect(await store.health()).toEqual({ ok: false, error: 'store is closed' });
    });
  });

  describe.skipIf(Boolean(backend.skip))('flows', () => {
    it('ignores a replayed change with the same sequence (a retried activity)', async () => {
      const store = await freshStore();
      expect(await store.recordFlowChange(change())).toEqual({ applied: true });
      expect(await store.recordFlowChange(change())).toEqual({ applied: false });
      expect(await store.listAudit({ flowId: 'flow-1' })).toHaveLength(1);
    });

    it('applies one of several identical changes racing each other', async () => {
      const store = await freshStore();
      const results = await Promise.all(Array.from({ length: 10 }, () => store.recordFlowChange(change())));
      expect(results.filter((r) => r.applied)).toHaveLength(1);
      expect(await store.listAudit({ flowId: 'flow-1' })).toHaveLength(1);
    });

    it('never moves a flow back to an older sequence', async () => {
      const store = await freshStore();
      await store.recordFlowChange(change({ sequence: 2, status: 'choosing_services', userId: 'alice', upstreams: ['notion', 'github'], at: '2026-01-01T00:00:02.000Z' }));
      await store.recordFlowChange(change({ sequence: 1, status: 'identifying' }));
      expect(await store.getFlow('flow-1')).toEqual({
        flowId: 'flow-1',
        clientId: 'client-1',
        userId: 'alice',
        upstreams: ['notion', 'github'],
        status: 'choosing_services',
        createdAt: '2026-01-01T00:00:02.000Z',
        updatedAt: '2026-01-01T00:00:02.000Z',
      });
      expect((await store.listAudit({ flowId: 'flow-1' })).map((a) => a.event)).toEqual(['flow.choosing_services', 'flow.identifying']);
    });

    it('records the changes of a flow at once, skipping those recorded before, and rolls back all of them on a failure', async () => {
      const store = await freshStore();
      await store.recordFlowChange(change({ sequence: 2, status: 'choosing_services', userId: 'alice' }));
      const all = [change({}), change({ sequence: 2, status: 'choosing_services', userId: 'alice' }), change({ sequence: 3, status: 'approved', userId: 'alice', upstreams: ['github'] })];
      expect(await store.recordFlowChanges(all)).toEqual({ applied: 2 });
      expect(await store.recordFlowChanges(all)).toEqual({ applied: 0 });
      expect(await store.recordFlowChanges([])).toEqual({ applied: 0 });
      expect((await store.listAudit({ flowId: 'flow-1' })).map((a) => a.event)).toEqual(['flow.choosing_services', 'flow.identifying', 'flow.approved']);
      expect(await store.getFlow('flow-1')).toMatchObject({ status: 'approved', userId: 'alice', upstreams: ['github'] });

      // A change that cannot be written (its upstreams do not serialize) takes the ones before it along.
      const unwritable = { ...change({ flowId: 'flow-2', sequence: 2 }), upstreams: [1n as unknown as string] };
      await expect(store.recordFlowChanges([change({ flowId: 'flow-2' }), unwritable])).rejects.toThrow(/BigInt/);
      expect(await store.getFlow('flow-2')).toBeUndefined();
      expect(await store.listAudit({ flowId: 'flow-2' })).toEqual([]);
    });

    it('keeps concurrent changes of different flows apart', async () => {
      const store = await freshStore();
      await Promise.all(Array.from({ length: 50 }, (_, i) => store.recordFlowChange(change({ flowId: `flow-${i}` }))));
      expect(await store.listAudit({ limit: 1000 })).toHaveLength(50);
      expect((await Promise.all(Array.from({ length: 50 }, (_, i) => store.getFlow(`flow-${i}`)))).every((flow) => flow?.status === 'identifying')).toBe(true);
    });

    it('lists the audit log of one flow oldest first, and of all flows newest first within the limit', async () => {
      const store = await freshStore();
      await store.recordFlowChange(change({ flowId: 'a', userId: 'alice' }));
      await store.recordFlowChange(change({ flowId: 'b' }));
      await store.recordFlowChange(change({ flowId: 'a', sequence: 2, status: 'denied' }));
      const ofA = await store.listAudit({ flowId: 'a' });
      expect(ofA.map(({ flowId, userId, event, detail }) => ({ flowId, userId, event, detail }))).toEqual([
        { flowId: 'a', userId: 'alice', event: 'flow.identifying', detail: { clientId: 'client-1', upstreams: [], sequence: 1 } },
        { flowId: 'a', userId: null, event: 'flow.denied', detail: { clientId: 'client-1', upstreams: [], sequence: 2 } },
      ]);
      expect(typeof ofA[0]!.id).toBe('number');
      expect((await store.listAudit({ limit: 2 })).map((a) => `${a.flowId}:${a.event}`)).toEqual(['a:flow.denied', 'b:flow.identifying']);
    });

    it('binds a flow to the first browser that asks', async () => {
      const store = await freshStore();
      expect(await store.bindFlow('flow-1', 'browser-a', 't0')).toBe('browser-a');
      expect(await store.bindFlow('flow-1', 'browser-b', 't1')).toBe('browser-a');
      expect(await store.bindFlow('flow-2', 'browser-b', 't1')).toBe('browser-b');
    });
  });

  describe.skipIf(Boolean(backend.skip))('rate limit hits', () => {
    it('refuses a key past its limit until its oldest hit stops counting', async () => {
      const store = await freshStore();
      const t0 = 1_800_000_000_000;
      expect(await store.takeHit('k', t0, 60_000, 2)).toEqual({ taken: true, retryAfterMs: 0 });
      expect(await store.takeHit('k', t0 + 10_000, 60_000, 2)).toEqual({ taken: true, retryAfterMs: 0 });
      expect(await store.takeHit('k', t0 + 20_000, 60_000, 2)).toEqual({ taken: false, retryAfterMs: 40_000 });
      expect(await store.takeHit('other', t0 + 20_000, 60_000, 2)).toEqual({ taken: true, retryAfterMs: 0 });
      expect(await store.takeHit('k', t0 + 60_000, 60_000, 2)).toEqual({ taken: true, retryAfterMs: 0 });
      expect(await store.takeHit('k', t0 + 60_001, 60_000, 2)).toEqual({ taken: false, retryAfterMs: 9_999 });
    });

    it('keeps a long window’s hits when a shorter window’s hit purges expired ones', async () => {
      const store = await freshStore();
      const t0 = 1_800_000_000_000;
      expect((await store.takeHit('pending', t0, 900_000, 1)).taken).toBe(true);
      expect((await store.takeHit('per-minute', t0 + 120_000, 60_000, 1)).taken).toBe(true);
      expect(await store.takeHit('pending', t0 + 120_000, 900_000, 1)).toEqual({ taken: false, retryAfterMs: 780_000 });
    });
  });

  describe.skipIf(Boolean(backend.skip))('consents', () => {
    it('remembers, replaces, lists and forgets a consent', async () => {
      const store = await freshStore();
      const consent = { userId: 'alice', clientId: 'c1', upstreams: ['notion', 'github'], scopes: ['mcp:tools'], flowId: 'f1', grantedAt: '2026-01-01T00:00:00.000Z' };
      await store.saveConsent(consent);
      expect(await store.getConsent('alice', 'c1')).toEqual({ ...consent, upstreams: ['github', 'notion'] });
      await store.saveConsent({ ...consent, upstreams: ['notion'], flowId: 'f2', grantedAt: '2026-01-02T00:00:00.000Z' });
      await store.saveConsent({ ...consent, clientId: 'c0', grantedAt: '2026-01-01T12:00:00.000Z' });
      await store.saveConsent({ ...consent, userId: 'bob' });
      expect((await store.listConsents('alice')).map((c) => [c.clientId, c.flowId, c.upstreams])).toEqual([
        ['c0', 'f1', ['github', 'notion']],
        ['c1', 'f2', ['notion']],
      ]);
      expect(await store.deleteConsent('alice', 'c1')).toBe(true);
      expect(await store.deleteConsent('alice', 'c1')).toBe(false);
      expect(await store.getConsent('alice', 'c1')).toBeUndefined();
      expect(await store.getConsent('bob', 'c1')).toBeDefined();
    });
  });

  describe.skipIf(Boolean(backend.skip))('upstream authorizations', () => {
    it('stores the gateway client at an upstream, and replaces it', async () => {
      const store = await freshStore();
      const client = { upstream: 'notion', issuer: 'https://as.example', clientId: 'gw', clientSecret: 'v1.sealed', metadata: { token_endpoint_auth_method: 'client_secret_post' }, registeredAt: 't0' };
      await store.saveUpstreamClient(client);
      expect(await store.getUpstreamClient('notion')).toEqual(client);
      await store.saveUpstreamClient({ ...client, clientId: 'gw2', clientSecret: null, metadata: {} });
      expect(await store.getUpstreamClient('notion')).toEqual({ ...client, clientId: 'gw2', clientSecret: null, metadata: {} });
      expect(await store.getUpstreamClient('github')).toBeUndefined();
    });

    it('completes a pending authorization once, and never after it expired', async () => {
      const store = await freshStore();
      await store.createUpstreamAuthorization(authorization());
      await store.createUpstreamAuthorization(authorization({ stateHash: 'late' }));
      expect(await store.getUpstreamAuthorization('state-hash-1')).toEqual(authorization());
      expect(await store.completeUpstreamAuthorization('state-hash-1', { code: 'v1.code', callback: 'v1.cb' }, 1_000)).toBe(true);
      expect(await store.completeUpstreamAuthorization('state-hash-1', { code: 'v1.other', callback: 'v1.other' }, 1_001)).toBe(false);
      expect(await store.getUpstreamAuthorization('state-hash-1')).toEqual(authorization({ code: 'v1.code', callback: 'v1.cb', usedAt: 1_000 }));
      expect(await store.completeUpstreamAuthorization('late', { code: 'v1.code', callback: 'v1.cb' }, 2_000)).toBe(false);
      expect(await store.completeUpstreamAuthorization('unknown', { code: 'v1.code', callback: 'v1.cb' }, 1_000)).toBe(false);
    });

    it('keeps the issuer an authorization was sent to, and whether its response must name it', async () => {
      const store = await freshStore();
      await store.createUpstreamAuthorization(authorization({ issuer: 'https://as.example', issRequired: true }));
      await store.createUpstreamAuthorization(authorization({ stateHash: 'plain', issuer: 'https://other.example', issRequired: false }));
      expect(await store.getUpstreamAuthorization('state-hash-1')).toEqual(authorization({ issuer: 'https://as.example', issRequired: true }));
      expect(await store.getUpstreamAuthorization('plain')).toEqual(authorization({ stateHash: 'plain', issuer: 'https://other.example', issRequired: false }));
    });

    it('lets exactly one of several racing callbacks complete an authorization', async () => {
      const store = await freshStore();
      await store.createUpstreamAuthorization(authorization());
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => store.completeUpstreamAuthorization('state-hash-1', { code: `v1.code-${i}`, callback: 'v1.cb' }, 1_000)));
      expect(results.filter(Boolean)).toHaveLength(1);
      expect((await store.getUpstreamAuthorization('state-hash-1'))?.code).toBe(`v1.code-${results.indexOf(true)}`);
    });

    it('keeps the first result stored under an exchange key', async () => {
      const store = await freshStore();
      expect(await store.getExchangeResult('flow-1:notion')).toBeUndefined();
      await store.putExchangeResult('flow-1:notion', 'v1.first', 't0');
      await store.putExchangeResult('flow-1:notion', 'v1.second', 't1');
      expect(await store.getExchangeResult('flow-1:notion')).toBe('v1.first');
    });
  });

  describe.skipIf(Boolean(backend.skip))('upstream tokens', () => {
    it('saves, lists, updates and deletes a user’s tokens at each upstream', async () => {
      const store = await freshStore();
      await store.saveUpstreamTokens(tokens());
      await store.saveUpstreamTokens(tokens({ upstream: 'github', refreshToken: null, expiresAt: null, scopes: [] }));
      await store.saveUpstreamTokens(tokens({ userId: 'bob' }));
      expect(await store.getUpstreamTokens('alice', 'notion')).toEqual(tokens());
      expect((await store.listUpstreamTokens('alice')).map((t) => [t.upstream, t.refreshToken, t.expiresAt])).toEqual([
        ['github', null, null],
        ['notion', 'v1.sealed-refresh', 1_900_000_000],
      ]);
      await store.saveUpstreamTokens(tokens({ accessToken: 'v1.refreshed', version: 2, expiresAt: 1_900_003_600, updatedAt: 't1' }));
      await store.setUpstreamTokenStatus('alice', 'notion', 'needs_reconnect', 't2');
      await store.touchUpstreamTokens('alice', 'notion', 't3');
      expect(await store.getUpstreamTokens('alice', 'notion')).toEqual(
        tokens({ accessToken: 'v1.refreshed', version: 2, expiresAt: 1_900_003_600, status: 'needs_reconnect', updatedAt: 't2', lastUsedAt: 't3' }),
      );
      expect(await store.deleteUpstreamTokens('alice', 'notion')).toBe(true);
      expect(await store.deleteUpstreamTokens('alice', 'notion')).toBe(false);
      expect(await store.getUpstreamTokens('alice', 'notion')).toBeUndefined();
      expect(await store.getUpstreamTokens('bob', 'notion')).toEqual(tokens({ userId: 'bob' }));
    });

    it('keeps the issuer the tokens are bound to and the scopes a step-up asked for, and forgets them when a record without them replaces it', async () => {
      const store = await freshStore();
      await store.saveUpstreamTokens(tokens({ issuer: 'https://as.example/tenant', requiredScopes: ['read', 'admin'] }));
      expect(await store.getUpstreamTokens('alice', 'notion')).toEqual(tokens({ issuer: 'https://as.example/tenant', requiredScopes: ['read', 'admin'] }));
      await store.saveUpstreamTokens(tokens({ issuer: 'https://as.example/tenant', version: 2 }));
      expect(await store.getUpstreamTokens('alice', 'notion')).toEqual(tokens({ issuer: 'https://as.example/tenant', version: 2 }));
      await store.saveUpstreamTokens(tokens({ version: 3 }));
      expect(await store.getUpstreamTokens('alice', 'notion')).toEqual(tokens({ version: 3 }));
    });
  });

  describe.skipIf(Boolean(backend.skip))('elicitations', () => {
    it('completes an elicitation once and keeps the first completion', async () => {
      const store = await freshStore();
      const elicitation = { id: 'e1', userId: 'alice', clientId: 'c1', upstream: 'notion', createdAt: 1_000, expiresAt: 1_600, completedAt: null };
      await store.createElicitation(elicitation);
      expect(await store.getElicitation('e1')).toEqual(elicitation);
      await store.completeElicitation('e1', 1_100);
      await store.completeElicitation('e1', 1_200);
      expect(await store.getElicitation('e1')).toEqual({ ...elicitation, completedAt: 1_100 });
      expect(await store.getElicitation('e2')).toBeUndefined();
    });
  });

  describe.skipIf(Boolean(backend.skip))('OAuth server models', () => {
    it('finds a model by key until it expires, replaced by a later upsert', async () => {
      const store = await freshStore();
      await store.oauth.upsert('AccessToken', 'hash-1', oauthRecord({ a: 1 }, { expiresAt: 100 }));
      expect(await store.oauth.find('AccessToken', 'hash-1', 99)).toEqual({ payload: '{"a":1}', expiresAt: 100, consumedAt: null });
      expect(await store.oauth.find('AccessToken', 'hash-1', 100)).toBeUndefined();
      expect(await store.oauth.find('RefreshToken', 'hash-1', 99)).toBeUndefined();
      await store.oauth.upsert('AccessToken', 'hash-1', oauthRecord({ a: 2 }));
      expect(await store.oauth.find('AccessToken', 'hash-1', 1_000)).toEqual({ payload: '{"a":2}', expiresAt: null, consumedAt: null });
    });

    it('consumes and destroys a model', async () => {
      const store = await freshStore();
      await store.oauth.upsert('AuthorizationCode', 'code-hash', oauthRecord({ grantId: 'g1' }, { grantId: 'g1', expiresAt: 100 }));
      await store.oauth.consume('AuthorizationCode', 'code-hash', 50);
      expect(await store.oauth.find('AuthorizationCode', 'code-hash', 60)).toEqual({ payload: '{"grantId":"g1"}', expiresAt: 100, consumedAt: 50 });
      await store.oauth.destroy('AuthorizationCode', 'code-hash');
      expect(await store.oauth.find('AuthorizationCode', 'code-hash', 60)).toBeUndefined();
    });

    it('finds a session by its uid and a model by its user code, within the model and before expiry', async () => {
      const store = await freshStore();
      await store.oauth.upsert('Session', 'session-hash', oauthRecord({ uid: 'u1' }, { sessionUid: 'u1', expiresAt: 100 }));
      await store.oauth.upsert('DeviceCode', 'device-hash', oauthRecord({ userCode: 'ABCD' }, { userCode: 'ABCD', expiresAt: 100 }));
      expect(await store.oauth.findBySessionUid('Session', 'u1', 99)).toEqual({ payload: '{"uid":"u1"}', expiresAt: 100, consumedAt: null });
      expect(await store.oauth.findBySessionUid('Session', 'u1', 100)).toBeUndefined();
      expect(await store.oauth.findBySessionUid('Interaction', 'u1', 99)).toBeUndefined();
      expect(await store.oauth.findByUserCode('DeviceCode', 'ABCD', 99)).toEqual({ payload: '{"userCode":"ABCD"}', expiresAt: 100, consumedAt: null });
      expect(await store.oauth.findByUserCode('DeviceCode', 'ABCD', 100)).toBeUndefined();
    });

    it('revokes every model of a grant and nothing else', async () => {
      const store = await freshStore();
      await store.oauth.upsert('AccessToken', 'at', oauthRecord({}, { grantId: 'g1' }));
      await store.oauth.upsert('RefreshToken', 'rt', oauthRecord({}, { grantId: 'g1' }));
      await store.oauth.upsert('AccessToken', 'other', oauthRecord({}, { grantId: 'g2' }));
      expect(await store.oauth.revokeByGrantId('g1')).toBe(2);
      expect(await store.oauth.find('RefreshToken', 'rt', 0)).toBeUndefined();
      expect(await store.oauth.find('AccessToken', 'other', 0)).toBeDefined();
    });

    it('lists the unexpired grants one user gave one client', async () => {
      const store = await freshStore();
      await store.oauth.upsert('Grant', 'g2', oauthRecord({ accountId: 'alice', clientId: 'c1' }, { expiresAt: 100 }));
      await store.oauth.upsert('Grant', 'g1', oauthRecord({ accountId: 'alice', clientId: 'c1' }));
      await store.oauth.upsert('Grant', 'g3', oauthRecord({ accountId: 'alice', clientId: 'c2' }));
      await store.oauth.upsert('Grant', 'g4', oauthRecord({ accountId: 'bob', clientId: 'c1' }));
      await store.oauth.upsert('Grant', 'g5', oauthRecord({ accountId: 'alice', clientId: 'c1' }, { expiresAt: 10 }));
      expect(await store.oauth.listGrantIds('alice', 'c1', 50)).toEqual(['g1', 'g2']);
    });

    it('purges what expired and keeps the rest', async () => {
      const store = await freshStore();
      await store.oauth.upsert('AccessToken', 'old', oauthRecord({}, { expiresAt: 10 }));
      await store.oauth.upsert('Session', 'old-session', oauthRecord({}, { expiresAt: 20 }));
      await store.oauth.upsert('AccessToken', 'new', oauthRecord({}, { expiresAt: 100 }));
      await store.oauth.upsert('Client', 'forever', oauthRecord({}));
      expect(await store.oauth.purgeExpired(20)).toBe(2);
      expect(await store.oauth.find('AccessToken', 'new', 20)).toBeDefined();
      expect(await store.oauth.find('Client', 'forever', 20)).toBeDefined();
      expect(await store.oauth.purgeExpired(20)).toBe(0);
    });
  });
});

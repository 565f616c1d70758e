import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import sqlite3 from 'sqlite3';
import { migrations as defaultMigrations, type Migration } from './migrations.js';
import type { AuditRecord, ConsentRecord, ElicitationRecord, UpstreamAuthorizationRecord, UpstreamClientRecord, UpstreamTokenRecord, UpstreamTokenStatus, FlowChange, FlowRecord, FlowStatus, GatewayStore, OAuthModelRecord, OAuthModelStore, StoreHealth } from './store.js';

type Params = Record<string, unknown> | unknown[];

/** Promise wrapper around one sqlite3 connection. */
class Database {
  constructor(private readonly db: sqlite3.Database) {}

  static open(file: string): Promise<Database> {
    return new Promise((resolve, reject) => {
      const db = new sqlite3.Database(file, (error) => (error ? reject(error) : resolve(new Database(db))));
    });
  }

  run(sql: string, params: Params = []): Promise<{ changes: number; lastID: number }> {
    return new Promise((resolve, reject) => {
      this.db.run(sql, params, function onRun(error) {
        if (error) reject(error);
        else resolve({ changes: this.changes, lastID: this.lastID });
      });
    });
  }

  get<T>(sql: string, params: Params = []): Promise<T | undefined> {
    return new Promise((resolve, reject) => {
      this.db.get(sql, params, (error, row) => (error ? reject(error) : resolve(row as T | undefined)));
    });
  }

  all<T>(sql: string, params: Params = []): Promise<T[]> {
    return new Promise((resolve, reject) => {
      this.db.all(sql, params, (error, rows) => (error ? reject(error) : resolve(rows as T[])));
    });
  }

  exec(sql: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.db.exec(sql, (error) => (error ? reject(error) : resolve()));
    });
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.db.close((error) => (error ? reject(error) : resolve()));
    });
  }
}

/** Serialises transactions: sqlite3 shares one connection, so two interleaved BEGINs would collide. */
class TransactionQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(db: Database, work: () => Promise<T>): Promise<T> {
    const next = this.tail.then(async () => {
      await db.exec('BEGIN IMMEDIATE');
      try {
        const result = await work();
        await db.exec('COMMIT');
        return result;
      } catch (error) {
        await db.exec('ROLLBACK').catch(() => {});
        throw error;
      }
    });
    this.tail = next.catch(() => {});
    return next;
  }
}

interface FlowRow {
  flow_id: string;
  client_id: string;
  user_id: string | null;
  upstreams: string;
  status: string;
  sequence: number;
  created_at: string;
  updated_at: string;
}

interface ConsentRow {
  user_id: string;
  client_id: string;
  upstreams: string;
  scopes: string;
  flow_id: string;
  granted_at: string;
}

function toConsent(row: ConsentRow): ConsentRecord {
  return {
    userId: row.user_id,
    clientId: row.client_id,
    upstreams: JSON.parse(row.upstreams) as string[],
    scopes: JSON.parse(row.scopes) as string[],
    flowId: row.flow_id,
    grantedAt: row.granted_at,
  };
}

interface UpstreamTokenRow {
  user_id: string;
  upstream: string;
  access_token: string;
  refresh_token: string | null;
  token_type: string;
  scopes: string;
  expires_at: number | null;
  status: string;
  version: number;
  connected_at: string;
  last_used_at: string | null;
  updated_at: string;
}

function toUpstreamTokens(row: UpstreamTokenRow): UpstreamTokenRecord {
  return {
    userId: row.user_id,
    upstream: row.upstream,
    accessToken: row.access_token,
    refreshToken: row.refresh_token,
    tokenType: row.token_type,
    scopes: JSON.parse(row.scopes) as string[],
    expiresAt: row.expires_at,
    status: row.status as UpstreamTokenStatus,
    version: row.version,
    connectedAt: row.connected_at,
    lastUsedAt: row.last_used_at,
    updatedAt: row.updated_at,
  };
}

interface AuditRow {
  id: number;
  at: string;
  flow_id: string | null;
  user_id: string | null;
  event: string;
  detail: string;
}

/** Applies pending migrations in order, each in its own transaction; returns the schema version. */
export async function migrate(db: Database, migrations: readonly Migration[] = defaultMigrations): Promise<number> {
  await db.exec(
    'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
  );
  const row = await db.get<{ version: number | null }>('SELECT MAX(version) AS version FROM schema_migrations');
  let current = row?.version ?? 0;
  const known = Math.max(0, ...migrations.map((m) => m.version));
  if (current > known) {
    throw new Error(`the database schema is version ${current}, newer than this gateway knows (${known}); upgrade the gateway`);
  }
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    if (migration.version <= current) continue;
    await db.exec('BEGIN IMMEDIATE');
    try {
      await db.exec(migration.sql);
      await db.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [
        migration.version,
        migration.name,
        new Date().toISOString(),
      ]);
      await db.exec('COMMIT');
    } catch (error) {
      await db.exec('ROLLBACK').catch(() => {});
      throw new Error(`migration ${migration.version} (${migration.name}) failed: ${(error as Error).message}`);
    }
    current = migration.version;
  }
  return current;
}

function toFlow(row: FlowRow): FlowRecord {
  return {
    flowId: row.flow_id,
    clientId: row.client_id,
    userId: row.user_id,
    upstreams: JSON.parse(row.upstreams) as string[],
    status: row.status as FlowStatus,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

interface OAuthRow {
  payload: string;
  expires_at: number | null;
  consumed_at: number | null;
}

const toOAuthRecord = (row: OAuthRow | undefined): OAuthModelRecord | undefined =>
  row && { payload: row.payload, expiresAt: row.expires_at, consumedAt: row.consumed_at };

/** OAuth server models in the `oauth_models` table. */
class SqliteOAuthModels implements OAuthModelStore {
  constructor(private readonly db: Database) {}

  async upsert(
    model: string,
    key: string,
    record: { payload: string; expiresAt: number | null; grantId: string | null; sessionUid: string | null; userCode: string | null },
  ): Promise<void> {
    await this.db.run(
      `INSERT INTO oauth_models (model, key, payload, grant_id, session_uid, user_code, expires_at, consumed_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, NULL)
       ON CONFLICT (model, key) DO UPDATE SET
         payload = excluded.payload, grant_id = excluded.grant_id, session_uid = excluded.session_uid,
         user_code = excluded.user_code, expires_at = excluded.expires_at`,
      [model, key, record.payload, record.grantId, record.sessionUid, record.userCode, record.expiresAt],
    );
  }

  async find(model: string, key: string, now: number): Promise<OAuthModelRecord | undefined> {
    return toOAuthRecord(
      await this.db.get<OAuthRow>(
        'SELECT payload, expires_at, consumed_at FROM oauth_models WHERE model = ? AND key = ? AND (expires_at IS NULL OR expires_at > ?)',
        [model, key, now],
      ),
    );
  }

  async findBySessionUid(model: string, sessionUid: string, now: number): Promise<OAuthModelRecord | undefined> {
    return toOAuthRecord(
      await this.db.get<OAuthRow>(
        'SELECT payload, expires_at, consumed_at FROM oauth_models WHERE model = ? AND session_uid = ? AND (expires_at IS NULL OR expires_at > ?)',
        [model, sessionUid, now],
      ),
    );
  }

  async findByUserCode(model: string, userCode: string, now: number): Promise<OAuthModelRecord | undefined> {
    return toOAuthRecord(
      await this.db.get<OAuthRow>(
        'SELECT payload, expires_at, consumed_at FROM oauth_models WHERE model = ? AND user_code = ? AND (expires_at IS NULL OR expires_at > ?)',
        [model, userCode, now],
      ),
    );
  }

  async consume(model: string, key: string, at: number): Promise<void> {
    await this.db.run('UPDATE oauth_models SET consumed_at = ? WHERE model = ? AND key = ?', [at, model, key]);
  }

  async destroy(model: string, key: string): Promise<void> {
    await this.db.run('DELETE FROM oauth_models WHERE model = ? AND key = ?', [model, key]);
  }

  async revokeByGrantId(grantId: string): Promise<number> {
    return (await this.db.run('DELETE FROM oauth_models WHERE grant_id = ?', [grantId])).changes;
  }

  async listGrantIds(accountId: string, clientId: string, now: number): Promise<string[]> {
    const rows = await this.db.all<{ key: string }>(
      `SELECT key FROM oauth_models
       WHERE model = 'Grant' AND json_extract(payload, '$.accountId') = ? AND json_extract(payload, '$.clientId') = ?
         AND (expires_at IS NULL OR expires_at > ?)`,
      [accountId, clientId, now],
    );
    return rows.map((row) => row.key);
  }

  async purgeExpired(now: number): Promise<number> {
    return (await this.db.run('DELETE FROM oauth_models WHERE expires_at IS NOT NULL AND expires_at <= ?', [now])).changes;
  }
}

/** The SQLite implementation of {@link GatewayStore}: one file, WAL mode, migrations applied on open. */
export class SqliteStore implements GatewayStore {
  private readonly transactions = new TransactionQueue();
  private closed = false;
  readonly oauth: OAuthModelStore;

  private constructor(
    private readonly db: Database,
    readonly file: string,
  ) {
    this.oauth = new SqliteOAuthModels(db);
  }

  /** Opens (creating when needed) the database file and brings its schema up to date. */
  static async open(file: string): Promise<SqliteStore> {
    if (file !== ':memory:') await mkdir(path.dirname(file), { recursive: true });
    const db = await Database.open(file);
    try {
      await db.exec('PRAGMA journal_mode = WAL');
      await db.exec('PRAGMA synchronous = NORMAL');
      await db.exec('PRAGMA foreign_keys = ON');
      await db.exec('PRAGMA busy_timeout = 5000');
      await migrate(db);
    } catch (error) {
      await db.close().catch(() => {});
      throw error;
    }
    return new SqliteStore(db, file);
  }

  async recordFlowChange(change: FlowChange): Promise<{ applied: boolean }> {
    return this.transactions.run(this.db, async () => {
      const inserted = await this.db.run(
        'INSERT OR IGNORE INTO audit_log (at, flow_id, user_id, event, detail, dedupe_key) VALUES (?, ?, ?, ?, ?, ?)',
        [
          change.at,
          change.flowId,
          change.userId,
          `flow.${change.status}`,
          JSON.stringify({ clientId: change.clientId, upstreams: change.upstreams, sequence: change.sequence }),
          `flow:${change.flowId}:${change.sequence}`,
        ],
      );
      if (inserted.changes === 0) return { applied: false };
      await this.db.run(
        `INSERT INTO flows (flow_id, client_id, user_id, upstreams, status, sequence, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (flow_id) DO UPDATE SET
           client_id = excluded.client_id, user_id = excluded.user_id, upstreams = excluded.upstreams,
           status = excluded.status, sequence = excluded.sequence, updated_at = excluded.updated_at
         WHERE excluded.sequence > flows.sequence`,
        [
          change.flowId,
          change.clientId,
          change.userId,
          JSON.stringify(change.upstreams),
          change.status,
          change.sequence,
          change.at,
          change.at,
        ],
      );
      return { applied: true };
    });
  }

  async getFlow(flowId: string): Promise<FlowRecord | undefined> {
    const row = await this.db.get<FlowRow>('SELECT * FROM flows WHERE flow_id = ?', [flowId]);
    return row && toFlow(row);
  }

  async listAudit(filter: { flowId?: string; limit?: number }): Promise<AuditRecord[]> {
    const limit = Math.min(Math.max(filter.limit ?? 100, 1), 1000);
    const rows = filter.flowId
      ? await this.db.all<AuditRow>('SELECT * FROM audit_log WHERE flow_id = ? ORDER BY id LIMIT ?', [filter.flowId, limit])
      : await this.db.all<AuditRow>('SELECT * FROM audit_log ORDER BY id DESC LIMIT ?', [limit]);
    return rows.map((row) => ({
      id: row.id,
      at: row.at,
      flowId: row.flow_id,
      userId: row.user_id,
      event: row.event,
      detail: JSON.parse(row.detail) as Record<string, unknown>,
    }));
  }

  async saveConsent(consent: ConsentRecord): Promise<void> {
    await this.db.run(
      `INSERT INTO consents (user_id, client_id, upstreams, scopes, flow_id, granted_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (user_id, client_id) DO UPDATE SET
         upstreams = excluded.upstreams, scopes = excluded.scopes, flow_id = excluded.flow_id, granted_at = excluded.granted_at`,
      [consent.userId, consent.clientId, JSON.stringify([...consent.upstreams].sort()), JSON.stringify(consent.scopes), consent.flowId, consent.grantedAt],
    );
  }

  async getConsent(userId: string, clientId: string): Promise<ConsentRecord | undefined> {
    const row = await this.db.get<ConsentRow>('SELECT * FROM consents WHERE user_id = ? AND client_id = ?', [userId, clientId]);
    return row && toConsent(row);
  }

  async listConsents(userId: string): Promise<ConsentRecord[]> {
    return (await this.db.all<ConsentRow>('SELECT * FROM consents WHERE user_id = ? ORDER BY granted_at', [userId])).map(toConsent);
  }

  async deleteConsent(userId: string, clientId: string): Promise<boolean> {
    return (await this.db.run('DELETE FROM consents WHERE user_id = ? AND client_id = ?', [userId, clientId])).changes > 0;
  }

  async bindFlow(flowId: string, browserHash: string, at: string): Promise<string> {
    await this.db.run('INSERT OR IGNORE INTO flow_bindings (flow_id, browser_hash, created_at) VALUES (?, ?, ?)', [flowId, browserHash, at]);
    const row = await this.db.get<{ browser_hash: string }>('SELECT browser_hash FROM flow_bindings WHERE flow_id = ?', [flowId]);
    return row?.browser_hash ?? browserHash;
  }

  async saveUpstreamClient(client: UpstreamClientRecord): Promise<void> {
    await this.db.run(
      `INSERT INTO upstream_clients (upstream, issuer, client_id, client_secret, metadata, registered_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (upstream) DO UPDATE SET issuer = excluded.issuer, client_id = excluded.client_id,
         client_secret = excluded.client_secret, metadata = excluded.metadata, registered_at = excluded.registered_at`,
      [client.upstream, client.issuer, client.clientId, client.clientSecret, JSON.stringify(client.metadata), client.registeredAt],
    );
  }

  async getUpstreamClient(upstream: string): Promise<UpstreamClientRecord | undefined> {
    const row = await this.db.get<Record<string, string | null>>('SELECT * FROM upstream_clients WHERE upstream = ?', [upstream]);
    return (
      row && {
        upstream: String(row.upstream),
        issuer: String(row.issuer),
        clientId: String(row.client_id),
        clientSecret: row.client_secret ?? null,
        metadata: JSON.parse(String(row.metadata)) as Record<string, unknown>,
        registeredAt: String(row.registered_at),
      }
    );
  }

  async saveUpstreamTokens(tokens: UpstreamTokenRecord): Promise<void> {
    await this.db.run(
      `INSERT INTO upstream_tokens (user_id, upstream, access_token, refresh_token, token_type, scopes, expires_at, status, version, connected_at, last_used_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (user_id, upstream) DO UPDATE SET access_token = excluded.access_token, refresh_token = excluded.refresh_token,
         token_type = excluded.token_type, scopes = excluded.scopes, expires_at = excluded.expires_at, status = excluded.status,
         version = excluded.version, connected_at = excluded.connected_at, last_used_at = excluded.last_used_at, updated_at = excluded.updated_at`,
      [
        tokens.userId, tokens.upstream, tokens.accessToken, tokens.refreshToken, tokens.tokenType, JSON.stringify(tokens.scopes),
        tokens.expiresAt, tokens.status, tokens.version, tokens.connectedAt, tokens.lastUsedAt, tokens.updatedAt,
      ],
    );
  }

  async getUpstreamTokens(userId: string, upstream: string): Promise<UpstreamTokenRecord | undefined> {
    const row = await this.db.get<UpstreamTokenRow>('SELECT * FROM upstream_tokens WHERE user_id = ? AND upstream = ?', [userId, upstream]);
    return row && toUpstreamTokens(row);
  }

  async listUpstreamTokens(userId: string): Promise<UpstreamTokenRecord[]> {
    return (await this.db.all<UpstreamTokenRow>('SELECT * FROM upstream_tokens WHERE user_id = ? ORDER BY upstream', [userId])).map(toUpstreamTokens);
  }

  async setUpstreamTokenStatus(userId: string, upstream: string, status: UpstreamTokenStatus, at: string): Promise<void> {
    await this.db.run('UPDATE upstream_tokens SET status = ?, updated_at = ? WHERE user_id = ? AND upstream = ?', [status, at, userId, upstream]);
  }

  async touchUpstreamTokens(userId: string, upstream: string, at: string): Promise<void> {
    await this.db.run('UPDATE upstream_tokens SET last_used_at = ? WHERE user_id = ? AND upstream = ?', [at, userId, upstream]);
  }

  async deleteUpstreamTokens(userId: string, upstream: string): Promise<boolean> {
    return (await this.db.run('DELETE FROM upstream_tokens WHERE user_id = ? AND upstream = ?', [userId, upstream])).changes > 0;
  }

  async createUpstreamAuthorization(authorization: UpstreamAuthorizationRecord): Promise<void> {
    await this.db.run(
      `INSERT INTO upstream_authorizations (state_hash, flow_id, upstream, user_id, code_verifier, redirect_uri, code, callback, expires_at, used_at)
       VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?, NULL)`,
      [authorization.stateHash, authorization.flowId, authorization.upstream, authorization.userId, authorization.codeVerifier, authorization.redirectUri, authorization.expiresAt],
    );
  }

  async getUpstreamAuthorization(stateHash: string): Promise<UpstreamAuthorizationRecord | undefined> {
    const row = await this.db.get<Record<string, string | number | null>>('SELECT * FROM upstream_authorizations WHERE state_hash = ?', [stateHash]);
    return (
      row && {
        stateHash: String(row.state_hash),
        flowId: String(row.flow_id),
        upstream: String(row.upstream),
        userId: String(row.user_id),
        codeVerifier: String(row.code_verifier),
        redirectUri: String(row.redirect_uri),
        code: row.code === null ? null : String(row.code),
        callback: row.callback === null ? null : String(row.callback),
        expiresAt: Number(row.expires_at),
        usedAt: row.used_at === null ? null : Number(row.used_at),
      }
    );
  }

  async completeUpstreamAuthorization(stateHash: string, sealed: { code: string; callback: string }, now: number): Promise<boolean> {
    const result = await this.db.run(
      'UPDATE upstream_authorizations SET code = ?, callback = ?, used_at = ? WHERE state_hash = ? AND used_at IS NULL AND expires_at > ?',
      [sealed.code, sealed.callback, now, stateHash, now],
    );
    return result.changes > 0;
  }

  async getExchangeResult(key: string): Promise<string | undefined> {
    return (await this.db.get<{ result: string }>('SELECT result FROM exchange_results WHERE key = ?', [key]))?.result;
  }

  async putExchangeResult(key: string, sealedResult: string, at: string): Promise<void> {
    await this.db.run('INSERT OR IGNORE INTO exchange_results (key, result, created_at) VALUES (?, ?, ?)', [key, sealedResult, at]);
  }

  async createElicitation(elicitation: ElicitationRecord): Promise<void> {
    await this.db.run(
      'INSERT INTO elicitations (id, user_id, client_id, upstream, created_at, expires_at, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      [elicitation.id, elicitation.userId, elicitation.clientId, elicitation.upstream, elicitation.createdAt, elicitation.expiresAt, elicitation.completedAt],
    );
  }

  async getElicitation(id: string): Promise<ElicitationRecord | undefined> {
    const row = await this.db.get<Record<string, string | number | null>>('SELECT * FROM elicitations WHERE id = ?', [id]);
    return (
      row && {
        id: String(row.id),
        userId: String(row.user_id),
        clientId: String(row.client_id),
        upstream: String(row.upstream),
        createdAt: Number(row.created_at),
        expiresAt: Number(row.expires_at),
        completedAt: row.completed_at === null ? null : Number(row.completed_at),
      }
    );
  }

  async completeElicitation(id: string, at: number): Promise<void> {
    await this.db.run('UPDATE elicitations SET completed_at = ? WHERE id = ? AND completed_at IS NULL', [at, id]);
  }

  async health(): Promise<StoreHealth> {
    if (this.closed) return { ok: false, error: 'store is closed' };
    try {
      const row = await this.db.get<{ version: number }>('SELECT MAX(version) AS version FROM schema_migrations');
      return { ok: true, schemaVersion: row?.version ?? 0 };
    } catch (error) {
      return { ok: false, error: (error as Error).message };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.transactions.run(this.db, async () => {}).catch(() => {});
    await this.db.close();
  }
}

/** Internal handle for migration tests. */
export { Database as SqliteDatabase };

import type { Migration } from './migrations.js';
import { listGrantField, listRegisteredClients, listUpstreamConnections } from './sql-admin.js';
import { appendAuditEntry, queryAuditEntries } from './sql-audit.js';
import type {
  AuditEntry,
  AuditQuery,
  AuditRecord,
  ClientSummary,
  ConsentRecord,
  ElicitationRecord,
  EventChannel,
  FlowChange,
  SealedValue,
  FlowRecord,
  FlowStatus,
  GatewayStore,
  NewAuditEntry,
  OAuthModelRecord,
  OAuthModelStore,
  StoreHealth,
  UpstreamAuthorizationRecord,
  UpstreamClientRecord,
  UpstreamTokenRecord,
  UpstreamConnectionSummary,
  UpstreamTokenStatus,
} from './store.js';
import { sealedColumns } from './store.js';

/**
 * One connection, or one transaction, as the shared store sees it. Statements use `?`
 * placeholders whatever the backend; rows come back as plain objects with numbers for integers.
 */
export interface SqlExecutor {
  run(sql: string, params?: unknown[]): Promise<{ changes: number }>;
  get<T>(sql: string, params?: unknown[]): Promise<T | undefined>;
  all<T>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Runs one or more statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

/** A backend's database: single statements, and transactions for writes that span rows. */
export interface SqlDatabase extends SqlExecutor {
  /** Runs `work` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /** Waits for the transactions under way, then closes the connection or the pool. */
  close(): Promise<void>;
}

/** The few places where the SQL of the two backends differs. */
export interface SqlDialect {
  /** An expression giving the text of `field` in the JSON object stored as text in `column`. */
  jsonField(column: string, field: string): string;
}

/**
 * Applies pending migrations in order, each in its own transaction; returns the schema version.
 * Refuses a database whose schema is newer than `migrations` know.
 */
export async function applyMigrations(db: SqlDatabase, migrations: readonly Migration[]): Promise<number> {
  await db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
  let current = (await db.get<{ version: number | null }>('SELECT MAX(version) AS version FROM schema_migrations'))?.version ?? 0;
  const known = Math.max(0, ...migrations.map((m) => m.version));
  if (current > known) {
    throw new Error(`the database schema is version ${current}, newer than this gateway knows (${known}); upgrade the gateway`);
  }
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    if (migration.version <= current) continue;
    try {
      await db.transaction(async (tx) => {
        // Another process may have applied it since the version was read; inside the
        // transaction (which holds the write lock) that answer is final.
        if (await tx.get('SELECT version FROM schema_migrations WHERE version = ?', [migration.version])) return;
        await tx.exec(migration.sql);
        await tx.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [migration.version, migration.name, new Date().toISOString()]);
      });
    } catch (error) {
      throw new Error(`migration ${migration.version} (${migration.name}) failed: ${(error as Error).message}`);
    }
    current = migration.version;
  }
  return current;
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

const toFlow = (row: FlowRow): FlowRecord => ({
  flowId: row.flow_id,
  clientId: row.client_id,
  userId: row.user_id,
  upstreams: JSON.parse(row.upstreams) as string[],
  status: row.status as FlowStatus,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

interface AuditRow {
  id: number;
  at: string;
  flow_id: string | null;
  user_id: string | null;
  event: string;
  detail: string;
}

const toAudit = (row: AuditRow): AuditRecord => ({
  id: row.id,
  at: row.at,
  flowId: row.flow_id,
  userId: row.user_id,
  event: row.event,
  detail: JSON.parse(row.detail) as Record<string, unknown>,
});

interface ConsentRow {
  user_id: string;
  client_id: string;
  upstreams: string;
  scopes: string;
  flow_id: string;
  granted_at: string;
}

const toConsent = (row: ConsentRow): ConsentRecord => ({
  userId: row.user_id,
  clientId: row.client_id,
  upstreams: JSON.parse(row.upstreams) as string[],
  scopes: JSON.parse(row.scopes) as string[],
  flowId: row.flow_id,
  grantedAt: row.granted_at,
});

interface UpstreamClientRow {
  upstream: string;
  issuer: string;
  client_id: string;
  client_secret: string | null;
  metadata: string;
  registered_at: string;
}

const toUpstreamClient = (row: UpstreamClientRow): UpstreamClientRecord => ({
  upstream: row.upstream,
  issuer: row.issuer,
  clientId: row.client_id,
  clientSecret: row.client_secret,
  metadata: JSON.parse(row.metadata) as Record<string, unknown>,
  registeredAt: row.registered_at,
});

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
  issuer: string | null;
  required_scopes: string | null;
  dpop_key: string | null;
  connected_at: string;
  last_used_at: string | null;
  updated_at: string;
}

const toUpstreamTokens = (row: UpstreamTokenRow): UpstreamTokenRecord => ({
  userId: row.user_id,
  upstream: row.upstream,
  accessToken: row.access_token,
  refreshToken: row.refresh_token,
  tokenType: row.token_type,
  scopes: JSON.parse(row.scopes) as string[],
  expiresAt: row.expires_at,
  status: row.status as UpstreamTokenStatus,
  version: row.version,
  ...(row.issuer ? { issuer: row.issuer } : {}),
  ...(row.required_scopes ? { requiredScopes: JSON.parse(row.required_scopes) as string[] } : {}),
  ...(row.dpop_key ? { dpopKey: row.dpop_key } : {}),
  connectedAt: row.connected_at,
  lastUsedAt: row.last_used_at,
  updatedAt: row.updated_at,
});

interface UpstreamAuthorizationRow {
  state_hash: string;
  flow_id: string;
  upstream: string;
  user_id: string;
  code_verifier: string;
  redirect_uri: string;
  code: string | null;
  callback: string | null;
  expires_at: number;
  used_at: number | null;
  issuer: string | null;
  iss_required: number | null;
}

const toUpstreamAuthorization = (row: UpstreamAuthorizationRow): UpstreamAuthorizationRecord => ({
  stateHash: row.state_hash,
  flowId: row.flow_id,
  upstream: row.upstream,
  userId: row.user_id,
  codeVerifier: row.code_verifier,
  redirectUri: row.redirect_uri,
  code: row.code,
  callback: row.callback,
  expiresAt: row.expires_at,
  usedAt: row.used_at,
  ...(row.issuer !== null ? { issuer: row.issuer, issRequired: Boolean(row.iss_required) } : {}),
});

interface ElicitationRow {
  id: string;
  user_id: string;
  client_id: string;
  upstream: string;
  created_at: number;
  expires_at: number;
  completed_at: number | null;
}

const toElicitation = (row: ElicitationRow): ElicitationRecord => ({
  id: row.id,
  userId: row.user_id,
  clientId: row.client_id,
  upstream: row.upstream,
  createdAt: row.created_at,
  expiresAt: row.expires_at,
  completedAt: row.completed_at,
});

interface OAuthRow {
  payload: string;
  expires_at: number | null;
  consumed_at: number | null;
}

const toOAuthRecord = (row: OAuthRow | undefined): OAuthModelRecord | undefined =>
  row && { payload: row.payload, expiresAt: row.expires_at, consumedAt: row.consumed_at };

const oauthColumns = 'SELECT payload, expires_at, consumed_at FROM oauth_models';
const unexpired = '(expires_at IS NULL OR expires_at > ?)';

/** OAuth server models in the `oauth_models` table; keys arrive hashed where the id is a secret. */
class SqlOAuthModels implements OAuthModelStore {
  constructor(
    private readonly db: SqlExecutor,
    private readonly dialect: SqlDialect,
  ) {}

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
    return toOAuthRecord(await this.db.get<OAuthRow>(`${oauthColumns} WHERE model = ? AND key = ? AND ${unexpired}`, [model, key, now]));
  }

  async findBySessionUid(model: string, sessionUid: string, now: number): Promise<OAuthModelRecord | undefined> {
    return toOAuthRecord(await this.db.get<OAuthRow>(`${oauthColumns} WHERE model = ? AND session_uid = ? AND ${unexpired}`, [model, sessionUid, now]));
  }

  async findByUserCode(model: string, userCode: string, now: number): Promise<OAuthModelRecord | undefined> {
    return toOAuthRecord(await this.db.get<OAuthRow>(`${oauthColumns} WHERE model = ? AND user_code = ? AND ${unexpired}`, [model, userCode, now]));
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
       WHERE model = 'Grant' AND ${this.dialect.jsonField('payload', 'accountId')} = ? AND ${this.dialect.jsonField('payload', 'clientId')} = ?
         AND ${unexpired}
       ORDER BY key`,
      [accountId, clientId, now],
    );
    return rows.map((row) => row.key);
  }

  async purgeExpired(now: number): Promise<number> {
    return (await this.db.run('DELETE FROM oauth_models WHERE expires_at IS NOT NULL AND expires_at <= ?', [now])).changes;
  }
}

/**
 * {@link GatewayStore} in SQL that SQLite and PostgreSQL both run, so the two backends share one
 * set of semantics; each backend brings its connection, its migrations and its {@link SqlDialect}.
 */
/**
 * Writes one flow change inside `tx`: the audit line's unique key decides whether this change was
 * seen before; the flow row follows it in the same transaction so the two never disagree.
 */
async function recordFlowChangeIn(tx: SqlExecutor, change: FlowChange): Promise<{ applied: boolean }> {
  const inserted = await tx.run(
    `INSERT INTO audit_log (at, flow_id, user_id, event, detail, dedupe_key) VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (dedupe_key) DO NOTHING`,
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
  await tx.run(
    `INSERT INTO flows (flow_id, client_id, user_id, upstreams, status, sequence, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (flow_id) DO UPDATE SET
       client_id = excluded.client_id, user_id = excluded.user_id, upstreams = excluded.upstreams,
       status = excluded.status, sequence = excluded.sequence, updated_at = excluded.updated_at
     WHERE excluded.sequence > flows.sequence`,
    [change.flowId, change.clientId, change.userId, JSON.stringify(change.upstreams), change.status, change.sequence, change.at, change.at],
  );
  return { applied: true };
}

export class SqlStore implements GatewayStore {
  private closed = false;
  readonly oauth: OAuthModelStore;

  protected constructor(
    private readonly db: SqlDatabase,
    private readonly dialect: SqlDialect,
    readonly events: EventChannel & { close(): Promise<void> },
  ) {
    this.oauth = new SqlOAuthModels(db, dialect);
  }

  async takeHit(key: string, now: number, windowMs: number, limit: number): Promise<{ taken: boolean; retryAfterMs: number }> {
    // `at` holds when a hit stops counting, so one purge serves every window length.
    await this.db.run('DELETE FROM rate_limit_hits WHERE at <= ?', [now]);
    const row = await this.db.get<{ hits: number | string; first: number | string | null }>('SELECT COUNT(*) AS hits, MIN(at) AS first FROM rate_limit_hits WHERE key = ? AND at > ?', [key, now]);
    if (Number(row?.hits ?? 0) >= limit) return { taken: false, retryAfterMs: Math.max(0, Number(row?.first ?? now) - now) };
    await this.db.run('INSERT INTO rate_limit_hits (key, at) VALUES (?, ?)', [key, now + windowMs]);
    return { taken: true, retryAfterMs: 0 };
  }

  async listSealedValues(): Promise<SealedValue[]> {
    const values: SealedValue[] = [];
    for (const [table, { key, sealed }] of Object.entries(sealedColumns) as [SealedValue['table'], (typeof sealedColumns)[SealedValue['table']]][]) {
      const rows = await this.db.all<Record<string, string | null>>(`SELECT ${[...key, ...sealed].join(', ')} FROM ${table}`);
      for (const row of rows) {
        for (const column of sealed) {
          const value = row[column];
          if (value) values.push({ table, column, key: key.map((name) => String(row[name])), value });
        }
      }
    }
    return values;
  }

  async replaceSealedValue(ref: SealedValue, sealed: string): Promise<boolean> {
    const { key, sealed: columns } = sealedColumns[ref.table];
    // Only the known column names reach the SQL; values are parameters.
    if (!(columns as readonly string[]).includes(ref.column) || ref.key.length !== key.length) throw new Error(`${ref.table}.${ref.column} is not a sealed column`);
    const where = key.map((name) => `${name} = ?`).join(' AND ');
    const result = await this.db.run(`UPDATE ${ref.table} SET ${ref.column} = ? WHERE ${where} AND ${ref.column} = ?`, [sealed, ...ref.key, ref.value]);
    return result.changes > 0;
  }

  async getKeyCheck(ring: string): Promise<{ fingerprints: Record<string, string>; active: string; writtenAt: string } | undefined> {
    const row = await this.db.get<{ fingerprints: string; active: string; written_at: string }>('SELECT fingerprints, active, written_at FROM key_checks WHERE ring = ?', [ring]);
    return row && { fingerprints: JSON.parse(row.fingerprints) as Record<string, string>, active: row.active, writtenAt: row.written_at };
  }

  async putKeyCheck(ring: string, check: { fingerprints: Record<string, string>; active: string; writtenAt: string }): Promise<void> {
    await this.db.run(
      `INSERT INTO key_checks (ring, fingerprints, active, written_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (ring) DO UPDATE SET fingerprints = excluded.fingerprints, active = excluded.active, written_at = excluded.written_at`,
      [ring, JSON.stringify(check.fingerprints), check.active, check.writtenAt],
    );
  }

  async recordFlowChange(change: FlowChange): Promise<{ applied: boolean }> {
    return this.db.transaction((tx) => recordFlowChangeIn(tx, change));
  }

  async recordFlowChanges(changes: FlowChange[]): Promise<{ applied: number }> {
    if (changes.length === 0) return { applied: 0 };
    return this.db.transaction(async (tx) => {
      let applied = 0;
      for (const change of changes) if ((await recordFlowChangeIn(tx, change)).applied) applied += 1;
      return { applied };
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
    return rows.map(toAudit);
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
    return (await this.db.all<ConsentRow>('SELECT * FROM consents WHERE user_id = ? ORDER BY granted_at, client_id', [userId])).map(toConsent);
  }

  async deleteConsent(userId: string, clientId: string): Promise<boolean> {
    return (await this.db.run('DELETE FROM consents WHERE user_id = ? AND client_id = ?', [userId, clientId])).changes > 0;
  }

  async bindFlow(flowId: string, browserHash: string, at: string): Promise<string> {
    await this.db.run('INSERT INTO flow_bindings (flow_id, browser_hash, created_at) VALUES (?, ?, ?) ON CONFLICT (flow_id) DO NOTHING', [flowId, browserHash, at]);
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
    const row = await this.db.get<UpstreamClientRow>('SELECT * FROM upstream_clients WHERE upstream = ?', [upstream]);
    return row && toUpstreamClient(row);
  }

  async saveUpstreamTokens(tokens: UpstreamTokenRecord): Promise<void> {
    await this.db.run(
      `INSERT INTO upstream_tokens (user_id, upstream, access_token, refresh_token, token_type, scopes, expires_at, status, version, issuer, required_scopes, dpop_key, connected_at, last_used_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (user_id, upstream) DO UPDATE SET access_token = excluded.access_token, refresh_token = excluded.refresh_token,
         token_type = excluded.token_type, scopes = excluded.scopes, expires_at = excluded.expires_at, status = excluded.status,
         version = excluded.version, issuer = excluded.issuer, required_scopes = excluded.required_scopes, dpop_key = excluded.dpop_key, connected_at = excluded.connected_at, last_used_at = excluded.last_used_at, updated_at = excluded.updated_at`,
      [
        tokens.userId, tokens.upstream, tokens.accessToken, tokens.refreshToken, tokens.tokenType, JSON.stringify(tokens.scopes),
        tokens.expiresAt, tokens.status, tokens.version, tokens.issuer ?? null, tokens.requiredScopes?.length ? JSON.stringify(tokens.requiredScopes) : null, tokens.dpopKey ?? null, tokens.connectedAt, tokens.lastUsedAt, tokens.updatedAt,
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
      `INSERT INTO upstream_authorizations (state_hash, flow_id, upstream, user_id, code_verifier, redirect_uri, code, callback, expires_at, used_at, issuer, iss_required)
       VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?, NULL, ?, ?)`,
      [
        authorization.stateHash,
        authorization.flowId,
        authorization.upstream,
        authorization.userId,
        authorization.codeVerifier,
        authorization.redirectUri,
        authorization.expiresAt,
        authorization.issuer ?? null,
        authorization.issuer === undefined ? null : authorization.issRequired ? 1 : 0,
      ],
    );
  }

  async getUpstreamAuthorization(stateHash: string): Promise<UpstreamAuthorizationRecord | undefined> {
    const row = await this.db.get<UpstreamAuthorizationRow>('SELECT * FROM upstream_authorizations WHERE state_hash = ?', [stateHash]);
    return row && toUpstreamAuthorization(row);
  }

  async completeUpstreamAuthorization(stateHash: string, sealed: { code: string; callback: string }, now: number): Promise<boolean> {
    // One conditional UPDATE: of two callbacks racing on two processes, exactly one matches.
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
    await this.db.run('INSERT INTO exchange_results (key, result, created_at) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING', [key, sealedResult, at]);
  }

  async createElicitation(elicitation: ElicitationRecord): Promise<void> {
    await this.db.run(
      'INSERT INTO elicitations (id, user_id, client_id, upstream, created_at, expires_at, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      [elicitation.id, elicitation.userId, elicitation.clientId, elicitation.upstream, elicitation.createdAt, elicitation.expiresAt, elicitation.completedAt],
    );
  }

  async getElicitation(id: string): Promise<ElicitationRecord | undefined> {
    const row = await this.db.get<ElicitationRow>('SELECT * FROM elicitations WHERE id = ?', [id]);
    return row && toElicitation(row);
  }

  async completeElicitation(id: string, at: number): Promise<void> {
    await this.db.run('UPDATE elicitations SET completed_at = ? WHERE id = ? AND completed_at IS NULL', [at, id]);
  }

  appendAudit(entry: NewAuditEntry, dedupeKey?: string): Promise<boolean> {
    return appendAuditEntry(this.db, entry, dedupeKey);
  }

  queryAudit(query: AuditQuery): Promise<AuditEntry[]> {
    return queryAuditEntries(this.db, query);
  }

  async listAllConsents(limit: number): Promise<ConsentRecord[]> {
    return (await this.db.all<ConsentRow>('SELECT * FROM consents ORDER BY user_id, client_id LIMIT ?', [Math.min(Math.max(Math.floor(limit), 1), 10_000)])).map(toConsent);
  }

  listUpstreamConnections(limit: number, userId?: string): Promise<UpstreamConnectionSummary[]> {
    return listUpstreamConnections(this.db, limit, userId);
  }

  listRegisteredClients(limit: number): Promise<ClientSummary[]> {
    return listRegisteredClients(this.db, limit);
  }

  listGrantClients(userId: string, now: number): Promise<string[]> {
    return listGrantField(this.db, this.dialect, 'clientId', 'accountId', userId, now);
  }

  listGrantUsers(clientId: string, now: number): Promise<string[]> {
    return listGrantField(this.db, this.dialect, 'accountId', 'clientId', clientId, now);
  }

  async health(): Promise<StoreHealth> {
    if (this.closed) return { ok: false, error: 'store is closed' };
    try {
      const row = await this.db.get<{ version: number | null }>('SELECT MAX(version) AS version FROM schema_migrations');
      return { ok: true, schemaVersion: row?.version ?? 0 };
    } catch (error) {
      return { ok: false, error: (error as Error).message };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.events.close();
    await this.db.close();
  }
}

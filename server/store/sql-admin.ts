import type { ClientSummary, UpstreamConnectionSummary, UpstreamTokenStatus } from './store.js';
import type { SqlDialect, SqlExecutor } from './sql-store.js';

const cap = (limit: number) => Math.min(Math.max(Math.floor(limit), 1), 10_000);
const unexpired = '(expires_at IS NULL OR expires_at > ?)';

/** Upstream connections (one user's, or everyone's) without their sealed tokens. */
export async function listUpstreamConnections(db: SqlExecutor, limit: number, userId?: string): Promise<UpstreamConnectionSummary[]> {
  const rows = await db.all<{ user_id: string; upstream: string; status: string; scopes: string; connected_at: string; last_used_at: string | null; updated_at: string }>(
    `SELECT user_id, upstream, status, scopes, connected_at, last_used_at, updated_at FROM upstream_tokens
     ${userId === undefined ? '' : 'WHERE user_id = ?'} ORDER BY user_id, upstream LIMIT ?`,
    userId === undefined ? [cap(limit)] : [userId, cap(limit)],
  );
  return rows.map((row) => ({
    userId: row.user_id,
    upstream: row.upstream,
    status: row.status as UpstreamTokenStatus,
    scopes: JSON.parse(row.scopes) as string[],
    connectedAt: row.connected_at,
    lastUsedAt: row.last_used_at,
    updatedAt: row.updated_at,
  }));
}

/** Registered clients (dynamic registration), with only their public metadata. */
export async function listRegisteredClients(db: SqlExecutor, limit: number): Promise<ClientSummary[]> {
  const rows = await db.all<{ key: string; payload: string }>("SELECT key, payload FROM oauth_models WHERE model = 'Client' ORDER BY key LIMIT ?", [cap(limit)]);
  return rows.map((row) => {
    // The payload holds the client secret of a confidential client: only public fields leave here.
    const payload = JSON.parse(row.payload) as { client_id?: unknown; client_name?: unknown; redirect_uris?: unknown };
    return {
      clientId: typeof payload.client_id === 'string' ? payload.client_id : row.key,
      clientName: typeof payload.client_name === 'string' ? payload.client_name : null,
      redirectUris: Array.isArray(payload.redirect_uris) ? payload.redirect_uris.filter((uri): uri is string => typeof uri === 'string') : [],
    };
  });
}

/** The distinct values of one field of the unexpired OAuth grants whose other field is `value`. */
export async function listGrantField(db: SqlExecutor, dialect: SqlDialect, field: 'clientId' | 'accountId', where: 'accountId' | 'clientId', value: string, now: number): Promise<string[]> {
  const rows = await db.all<{ value: string }>(
    `SELECT DISTINCT ${dialect.jsonField('payload', field)} AS value FROM oauth_models
     WHERE model = 'Grant' AND ${dialect.jsonField('payload', where)} = ? AND ${unexpired} ORDER BY value`,
    [value, now],
  );
  return rows.map((row) => row.value).filter((found): found is string => typeof found === 'string');
}

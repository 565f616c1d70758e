import type { AuditEntry, AuditKind, AuditQuery, NewAuditEntry } from './store.js';
import type { SqlExecutor } from './sql-store.js';

interface AuditEntryRow {
  id: number;
  at: string;
  kind: string;
  user_id: string | null;
  client_id: string | null;
  upstream: string | null;
  outcome: string;
  flow_id: string | null;
  source_ip: string | null;
  actor: string | null;
}

const toEntry = (row: AuditEntryRow): AuditEntry => ({
  id: Number(row.id),
  at: row.at,
  kind: row.kind as AuditKind,
  userId: row.user_id,
  clientId: row.client_id,
  upstream: row.upstream,
  outcome: row.outcome,
  flowId: row.flow_id,
  sourceIp: row.source_ip,
  actor: row.actor,
});

/** Appends one audit entry; a repeated `dedupeKey` writes nothing. True when written. */
export async function appendAuditEntry(db: SqlExecutor, entry: NewAuditEntry, dedupeKey?: string): Promise<boolean> {
  const result = await db.run(
    `INSERT INTO audit_entries (at, kind, user_id, client_id, upstream, outcome, flow_id, source_ip, actor, dedupe_key)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (dedupe_key) DO NOTHING`,
    [entry.at, entry.kind, entry.userId, entry.clientId, entry.upstream, entry.outcome, entry.flowId, entry.sourceIp, entry.actor, dedupeKey ?? null],
  );
  return result.changes > 0;
}

/** Audit entries matching `query`, newest first; `before` continues from an earlier page. */
export async function queryAuditEntries(db: SqlExecutor, query: AuditQuery): Promise<AuditEntry[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (clause: string, value: unknown) => {
    where.push(clause);
    params.push(value);
  };
  if (query.userId !== undefined) add('user_id = ?', query.userId);
  if (query.clientId !== undefined) add('client_id = ?', query.clientId);
  if (query.upstream !== undefined) add('upstream = ?', query.upstream);
  if (query.kind !== undefined) add('kind = ?', query.kind);
  if (query.since !== undefined) add('at >= ?', query.since);
  if (query.until !== undefined) add('at < ?', query.until);
  if (query.before !== undefined) add('id < ?', query.before);
  params.push(Math.min(Math.max(Math.floor(query.limit), 1), 1000));
  const rows = await db.all<AuditEntryRow>(
    `SELECT id, at, kind, user_id, client_id, upstream, outcome, flow_id, source_ip, actor FROM audit_entries
     ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`,
    params,
  );
  return rows.map(toEntry);
}

/** The consent flow's lifecycle as the read model records it. */
export const flowStatuses = ['identifying', 'choosing_services', 'awaiting_approval', 'approved', 'denied', 'expired'] as const;
export type FlowStatus = (typeof flowStatuses)[number];

/** One consent flow in the read model. */
export interface FlowRecord {
  flowId: string;
  clientId: string;
  userId: string | null;
  upstreams: string[];
  status: FlowStatus;
  createdAt: string;
  updatedAt: string;
}

/** A change to a flow, written by the workflow through an activity. */
export interface FlowChange {
  flowId: string;
  /** Position of this change within the flow; a retried write with the same sequence is ignored. */
  sequence: number;
  clientId: string;
  userId: string | null;
  upstreams: string[];
  status: FlowStatus;
  /** When the change happened (workflow time), ISO 8601. */
  at: string;
}

/** One line of the audit log. */
export interface AuditRecord {
  id: number;
  at: string;
  flowId: string | null;
  userId: string | null;
  event: string;
  detail: Record<string, unknown>;
}

/** One stored model of the gateway's OAuth server (client, grant, session, token, ...). */
export interface OAuthModelRecord {
  /** The model as the OAuth library serialised it. */
  payload: string;
  /** Epoch seconds, or null for no expiry. */
  expiresAt: number | null;
  /** Epoch seconds when it was used up (authorization codes, rotated refresh tokens), else null. */
  consumedAt: number | null;
}

/** Storage for the gateway's OAuth server. Keys arrive already hashed where the value is a secret. */
export interface OAuthModelStore {
  upsert(
    model: string,
    key: string,
    record: { payload: string; expiresAt: number | null; grantId: string | null; sessionUid: string | null; userCode: string | null },
  ): Promise<void>;
  /** The record, or undefined when absent or expired at `now` (epoch seconds). */
  find(model: string, key: string, now: number): Promise<OAuthModelRecord | undefined>;
  findBySessionUid(model: string, sessionUid: string, now: number): Promise<OAuthModelRecord | undefined>;
  findByUserCode(model: string, userCode: string, now: number): Promise<OAuthModelRecord | undefined>;
  consume(model: string, key: string, at: number): Promise<void>;
  destroy(model: string, key: string): Promise<void>;
  /** Deletes every token of a grant (RFC 6749 §10.5 / §4.1.2 code replay; refresh-token reuse). */
  revokeByGrantId(grantId: string): Promise<number>;
  /** Deletes records expired before `now`; returns how many. */
  purgeExpired(now: number): Promise<number>;
}

/** A user's remembered approval of one MCP client for a set of upstreams (DESIGN.md, decision 10). */
export interface ConsentRecord {
  userId: string;
  clientId: string;
  upstreams: string[];
  scopes: string[];
  flowId: string;
  grantedAt: string;
}

/** Result of a store health check. */
export type StoreHealth = { ok: true; schemaVersion: number } | { ok: false; error: string };

/**
 * What the gateway needs from its database. Narrow on purpose: a Postgres implementation
 * must be able to follow the SQLite one.
 */
export interface GatewayStore {
  /** Applies a flow change and its audit line atomically; replays of the same sequence change nothing. */
  recordFlowChange(change: FlowChange): Promise<{ applied: boolean }>;
  getFlow(flowId: string): Promise<FlowRecord | undefined>;
  listAudit(filter: { flowId?: string; limit?: number }): Promise<AuditRecord[]>;
  /** Remembers (replaces) a user's consent for a client. Idempotent. */
  saveConsent(consent: ConsentRecord): Promise<void>;
  getConsent(userId: string, clientId: string): Promise<ConsentRecord | undefined>;
  listConsents(userId: string): Promise<ConsentRecord[]>;
  deleteConsent(userId: string, clientId: string): Promise<boolean>;
  /** Binds a flow to a browser (by the hash of its cookie) once; returns the hash bound first. */
  bindFlow(flowId: string, browserHash: string, at: string): Promise<string>;
  /** The OAuth server's models. */
  readonly oauth: OAuthModelStore;
  health(): Promise<StoreHealth>;
  close(): Promise<void>;
}

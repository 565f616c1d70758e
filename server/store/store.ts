import type { ConsentStatus } from '../../workflows/consent-flow/steps.js';

/** The consent flow's lifecycle as the read model records it. */
export type FlowStatus = ConsentStatus;

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
  /** Ids of the unexpired grants one user gave one client (for revoking that client, RFC 7009 §2.2). */
  listGrantIds(accountId: string, clientId: string, now: number): Promise<string[]>;
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

/** The gateway's OAuth client at one upstream (static from config, or registered there). */
export interface UpstreamClientRecord {
  upstream: string;
  issuer: string;
  clientId: string;
  /** Sealed; null for a public client. */
  clientSecret: string | null;
  /** The registration response or the static settings (no secret). */
  metadata: Record<string, unknown>;
  registeredAt: string;
}

/** Where a user stands with an upstream. */
export const upstreamTokenStatuses = ['connected', 'expired', 'needs_reconnect'] as const;
export type UpstreamTokenStatus = (typeof upstreamTokenStatuses)[number];

/** A user's tokens at one upstream; the tokens themselves are sealed (AES-256-GCM). */
export interface UpstreamTokenRecord {
  userId: string;
  upstream: string;
  accessToken: string;
  refreshToken: string | null;
  tokenType: string;
  scopes: string[];
  /** Epoch seconds, or null when the upstream gave no lifetime. */
  expiresAt: number | null;
  status: UpstreamTokenStatus;
  /** Moves up by one with every new access token (connect or refresh); callers name the version they saw. */
  version: number;
  /**
   * The issuer of the authorization server that issued these tokens (RFC 8414): they are bound to
   * it and never sent to another (MCP 2026-07-28, SEP-2352). Absent for tokens stored before it was recorded.
   */
  issuer?: string;
  /** Scopes the upstream asked for beyond those granted (`insufficient_scope`), for the next authorization there (SEP-2350). */
  requiredScopes?: string[];
  /**
   * The sealed private key the access token is bound to (DPoP, RFC 9449), when the upstream's
   * authorization server binds them: a JSON `{ alg, jwk }` sealed as `upstream_tokens:<user>:<upstream>:dpop`.
   */
  dpopKey?: string;
  connectedAt: string;
  lastUsedAt: string | null;
  updatedAt: string;
}

/** A pending authorization at an upstream, from "Connect" to its callback. Single use. */
export interface UpstreamAuthorizationRecord {
  /** SHA-256 of the `state` sent to the upstream. */
  stateHash: string;
  flowId: string;
  upstream: string;
  userId: string;
  /** Sealed PKCE verifier. */
  codeVerifier: string;
  redirectUri: string;
  /** Sealed authorization code, once the callback arrived. */
  code: string | null;
  /** Sealed callback parameters (for the `iss` check), once the callback arrived. */
  callback: string | null;
  /** Epoch seconds. */
  expiresAt: number;
  usedAt: number | null;
  /**
   * The issuer of the authorization server the request went to, which its response must name as
   * `iss` when it names one (RFC 9207 §2.4); absent on attempts recorded before it was kept.
   */
  issuer?: string | undefined;
  /** That server advertised `authorization_response_iss_parameter_supported`: a response without `iss` is not its own. */
  issRequired?: boolean | undefined;
}

/** A URL-mode elicitation (MCP SEP-1036): a link that lets one user connect one upstream. */
export interface ElicitationRecord {
  /** Random; the link's only key. */
  id: string;
  userId: string;
  clientId: string;
  upstream: string;
  /** Epoch seconds. */
  createdAt: number;
  expiresAt: number;
  completedAt: number | null;
}

/** Result of a store health check. */
export type StoreHealth = { ok: true; schemaVersion: number } | { ok: false; error: string };

/** The consent flows' read model, their audit log and the browser each flow is bound to. */
export interface FlowStore {
  /** Applies a flow change and its audit line atomically; replays of the same sequence change nothing. */
  recordFlowChange(change: FlowChange): Promise<{ applied: boolean }>;
  /** {@link recordFlowChange} for each change in order, in one transaction; answers how many were new. */
  recordFlowChanges(changes: FlowChange[]): Promise<{ applied: number }>;
  getFlow(flowId: string): Promise<FlowRecord | undefined>;
  listAudit(filter: { flowId?: string; limit?: number }): Promise<AuditRecord[]>;
  /** Binds a flow to a browser (by the hash of its cookie) once; returns the hash bound first. */
  bindFlow(flowId: string, browserHash: string, at: string): Promise<string>;
}

/** Remembered per-client consents (DESIGN.md, decision 10). */
export interface ConsentStore {
  /** Remembers (replaces) a user's consent for a client. Idempotent. */
  saveConsent(consent: ConsentRecord): Promise<void>;
  getConsent(userId: string, clientId: string): Promise<ConsentRecord | undefined>;
  listConsents(userId: string): Promise<ConsentRecord[]>;
  deleteConsent(userId: string, clientId: string): Promise<boolean>;
}

/**
 * The gateway's side of each upstream authorization: its client there, each pending
 * authorization from "Connect" to the callback, and the stored results of code exchanges.
 */
export interface UpstreamAuthorizationStore {
  saveUpstreamClient(client: UpstreamClientRecord): Promise<void>;
  getUpstreamClient(upstream: string): Promise<UpstreamClientRecord | undefined>;
  createUpstreamAuthorization(authorization: UpstreamAuthorizationRecord): Promise<void>;
  getUpstreamAuthorization(stateHash: string): Promise<UpstreamAuthorizationRecord | undefined>;
  /** Records the callback of a pending authorization once; false when it was used or expired already. */
  completeUpstreamAuthorization(stateHash: string, sealed: { code: string; callback: string }, now: number): Promise<boolean>;
  /** The stored result of a non-idempotent step (a code exchange), by its key. */
  getExchangeResult(key: string): Promise<string | undefined>;
  /** Stores a step's result once; a second write with the same key keeps the first. */
  putExchangeResult(key: string, sealedResult: string, at: string): Promise<void>;
}

/** Each user's sealed tokens at each upstream: the connections "My connections" lists. */
export interface UpstreamTokenStore {
  saveUpstreamTokens(tokens: UpstreamTokenRecord): Promise<void>;
  getUpstreamTokens(userId: string, upstream: string): Promise<UpstreamTokenRecord | undefined>;
  listUpstreamTokens(userId: string): Promise<UpstreamTokenRecord[]>;
  setUpstreamTokenStatus(userId: string, upstream: string, status: UpstreamTokenStatus, at: string): Promise<void>;
  /** Records that the user's tokens at an upstream were just used (for "last used"). */
  touchUpstreamTokens(userId: string, upstream: string, at: string): Promise<void>;
  deleteUpstreamTokens(userId: string, upstream: string): Promise<boolean>;
}

/** URL-mode elicitations (MCP SEP-1036): the connect links handed to MCP clients. */
export interface ElicitationStore {
  createElicitation(elicitation: ElicitationRecord): Promise<void>;
  getElicitation(id: string): Promise<ElicitationRecord | undefined>;
  completeElicitation(id: string, at: number): Promise<void>;
}

/** The storage of the gateway's OAuth server, as a role of its own. */
export interface OAuthModels {
  /** The OAuth server's models. */
  readonly oauth: OAuthModelStore;
}

/**
 * What one process tells every process of the deployment. Events name rows, never secrets: a
 * revoked token is announced by its grant id, so every process re-reads that grant's tokens.
 */
export type FleetEvent =
  | { kind: 'grant-revoked'; grantId: string }
  | { kind: 'consent-withdrawn'; userId: string; clientId: string }
  | { kind: 'elicitation-completed'; userId: string; clientId: string | null; elicitationId: string };

/** A channel every process of one deployment hears: PostgreSQL `LISTEN/NOTIFY`, or in-process for SQLite. */
export interface EventChannel {
  /** Delivers `event` to every subscriber of every process, this one included. */
  publish(event: FleetEvent): Promise<void>;
  /** Calls `listener` for each event; returns the function that stops it. */
  subscribe(listener: (event: FleetEvent) => void): () => void;
  /**
   * Changes whenever events may have been missed (the listening connection dropped or came back).
   * A cache trusts an entry only while `live()` and the generation it was filled under is current.
   */
  generation(): number;
  /** False while events may be missed: nothing cached may be trusted then. */
  live(): boolean;
}

/** Sliding-window hit counts shared by every process (rate limits). */
export interface RateLimitStore {
  /**
   * Records a hit for `key` at `now` (epoch ms), counting until `now + windowMs`, unless `limit` hits
   * of `key` still count; `taken` when recorded, else `retryAfterMs` until the oldest stops counting.
   * Each hit keeps its own expiry, so limits with different windows share the log. Requests racing
   * through two processes may pass one or two over the limit: a limit here slows abuse down, it is
   * not a quota.
   */
  takeHit(key: string, now: number, windowMs: number, limit: number): Promise<{ taken: boolean; retryAfterMs: number }>;
}

/** The fleet's key fingerprints (see `server/crypto/key-check.ts`): one row per key ring. */
export interface KeyCheckStore {
  getKeyCheck(ring: string): Promise<{ fingerprints: Record<string, string>; active: string; writtenAt: string } | undefined>;
  putKeyCheck(ring: string, check: { fingerprints: Record<string, string>; active: string; writtenAt: string }): Promise<void>;
}

/** Where the store keeps sealed values: each table's key columns and sealed columns. */
export const sealedColumns = {
  upstream_tokens: { key: ['user_id', 'upstream'], sealed: ['access_token', 'refresh_token', 'dpop_key'] },
  upstream_clients: { key: ['upstream'], sealed: ['client_secret'] },
  upstream_authorizations: { key: ['state_hash'], sealed: ['code_verifier', 'code', 'callback'] },
  exchange_results: { key: ['key'], sealed: ['result'] },
} as const;

/** One sealed value in the store, and the row and column it sits in. */
export interface SealedValue {
  table: keyof typeof sealedColumns;
  column: string;
  /** The row's key columns, in the order {@link sealedColumns} names them. */
  key: string[];
  value: string;
}

/** Every sealed value, for the re-seal job that rewrites them under the current key. */
export interface SealedValueStore {
  listSealedValues(): Promise<SealedValue[]>;
  /** Replaces `ref.value` with `sealed` unless the row changed since it was read; true when replaced. */
  replaceSealedValue(ref: SealedValue, sealed: string): Promise<boolean>;
}

/** The store as a channel between processes, as a role of its own. */
export interface StoreEvents {
  readonly events: EventChannel;
}

/** What every backend answers about itself. */
export interface StoreLifecycle {
  health(): Promise<StoreHealth>;
  /** Closes the connection (SQLite) or the pool (PostgreSQL) once every write under way is done. */
  close(): Promise<void>;
}

/**
 * What the gateway needs from its database: every role together. Consumers that need one role
 * take that role's interface; the narrow roles keep each backend easy to follow.
 */
export interface GatewayStore
  extends FlowStore,
    ConsentStore,
    UpstreamAuthorizationStore,
    UpstreamTokenStore,
    ElicitationStore,
    OAuthModels,
    StoreEvents,
    RateLimitStore,
    KeyCheckStore,
    SealedValueStore,
    AuditTrail,
    AdminDirectory,
    StoreLifecycle {}

/** What the audit trail records (issue 12): each a thing a person, a client or the gateway did. */
export const auditKinds = [
  'consent.approved',
  'consent.denied',
  'consent.remembered',
  'consent.expired',
  'consent.revoked',
  'upstream.connected',
  'upstream.reconnected',
  'upstream.refresh_failed',
  'upstream.needs_reconnect',
  'upstream.disconnected',
  'client.registered',
  'admin.revoke_user',
  'admin.revoke_client',
] as const;
export type AuditKind = (typeof auditKinds)[number];

/**
 * One audit entry as written. Names and ids only: never a token, code, verifier or secret, so the
 * trail can be shown to any operator and shipped to any log store.
 */
export interface NewAuditEntry {
  kind: AuditKind;
  /** ISO 8601. */
  at: string;
  userId: string | null;
  clientId: string | null;
  upstream: string | null;
  /** `ok`, or what went wrong (an OAuth error code, `expired`, ...). */
  outcome: string;
  /** The workflow behind the action (`consent:<flowId>`, `grant:<user>:<upstream>`, `connect:<id>`): its Temporal Web UI page. */
  flowId: string | null;
  /** The address the request came from; null for what a workflow did on its own (expiry, refresh). */
  sourceIp: string | null;
  /** Who acted when not the user: `admin`, `gateway`. */
  actor: string | null;
}

/** One stored audit entry; `id` grows with every entry and is the pagination cursor. */
export interface AuditEntry extends NewAuditEntry {
  id: number;
}

/** What `GET /admin/audit` filters by; every field narrows. */
export interface AuditQuery {
  userId?: string;
  clientId?: string;
  upstream?: string;
  kind?: AuditKind;
  /** ISO 8601, inclusive. */
  since?: string;
  /** ISO 8601, exclusive. */
  until?: string;
  /** Entries older than this id (the cursor of the previous page): newest first. */
  before?: number;
  limit: number;
}

/** The append-only audit trail. */
export interface AuditTrail {
  /**
   * Appends an entry; with a `dedupeKey`, a second append under the same key (a retried activity,
   * a repeated browser request) writes nothing. True when written.
   */
  appendAudit(entry: NewAuditEntry, dedupeKey?: string): Promise<boolean>;
  /** Entries matching `query`, newest first. */
  queryAudit(query: AuditQuery): Promise<AuditEntry[]>;
}

/** A user's connection to an upstream as operators see it: status and times, never the tokens. */
export interface UpstreamConnectionSummary {
  userId: string;
  upstream: string;
  status: UpstreamTokenStatus;
  scopes: string[];
  connectedAt: string;
  lastUsedAt: string | null;
  updatedAt: string;
}

/** A client the gateway's OAuth server knows, without its secret. */
export interface ClientSummary {
  clientId: string;
  clientName: string | null;
  redirectUris: string[];
}

/** What the admin API lists across every user (issue 12). Bounded by `limit`. */
export interface AdminDirectory {
  listAllConsents(limit: number): Promise<ConsentRecord[]>;
  listUpstreamConnections(limit: number, userId?: string): Promise<UpstreamConnectionSummary[]>;
  listRegisteredClients(limit: number): Promise<ClientSummary[]>;
  /** The clients a user holds unexpired OAuth grants of. */
  listGrantClients(userId: string, now: number): Promise<string[]>;
  /** The users holding unexpired OAuth grants of a client. */
  listGrantUsers(clientId: string, now: number): Promise<string[]>;
}

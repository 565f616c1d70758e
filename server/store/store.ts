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
  health(): Promise<StoreHealth>;
  close(): Promise<void>;
}

import { ApplicationFailure, Context } from '@temporalio/activity';
import type { AuditKind, FlowChange, NewAuditEntry, UpstreamTokenStatus } from '../server/store/store.js';

/** An audit entry as an activity reports it: the kind, and what it knows of the rest (the time is taken when recorded). */
export type ActivityAuditInput = Partial<Omit<NewAuditEntry, 'kind'>> & { kind: AuditKind };

/** What the audited activities report to, besides the store. */
export interface ActivityObservers {
  /** Records an entry once per `dedupeKey`; the gateway's audit recorder satisfies it. */
  audit: { record(input: ActivityAuditInput, dedupeKey?: string): Promise<void> };
  /** Counts a refresh that produced new upstream tokens. */
  refreshed?(upstream: string): void;
}

interface AuditedActivities {
  recordFlowChange(change: FlowChange): Promise<{ applied: boolean }>;
  recordFlowChanges(changes: FlowChange[]): Promise<{ applied: number }>;
  refreshUpstreamToken(input: { userId: string; upstream: string; version: number; key: string }): Promise<{ version: number }>;
  setUpstreamTokenStatus(input: { userId: string; upstream: string; status: UpstreamTokenStatus }): Promise<void>;
}

function activityInfo() {
  try {
    return Context.current().info;
  } catch {
    return undefined;
  }
}

/** True when this failure ends the activity: not retryable, or its last allowed attempt. */
function isFinal(error: unknown): boolean {
  if (error instanceof ApplicationFailure && error.nonRetryable) return true;
  const info = activityInfo();
  const maximum = info?.retryPolicy?.maximumAttempts;
  return info !== undefined && maximum !== undefined && maximum > 0 && info.attempt >= maximum;
}

/**
 * Wraps the activities whose outcomes belong in the audit trail: a flow's expiry, a refresh that
 * failed for good, a connection marked needs-reconnect. Workflows stay as they are (and their
 * histories replay): the entries are written here, once per outcome (dedupe keys survive retries).
 */
export function withAudit<T extends AuditedActivities>(activities: T, observers: ActivityObservers): T {
  async function auditExpiry(change: FlowChange): Promise<void> {
    if (change.status !== 'expired') return;
    await observers.audit.record(
      { kind: 'consent.expired', at: change.at, userId: change.userId, clientId: change.clientId, flowId: `consent:${change.flowId}`, outcome: 'expired', actor: 'gateway' },
      `flow-outcome:${change.flowId}`,
    );
  }
  return {
    ...activities,
    async recordFlowChange(change: FlowChange) {
      const result = await activities.recordFlowChange(change);
      await auditExpiry(change);
      return result;
    },
    async recordFlowChanges(changes: FlowChange[]) {
      const result = await activities.recordFlowChanges(changes);
      for (const change of changes) await auditExpiry(change);
      return result;
    },
    async refreshUpstreamToken(input: { userId: string; upstream: string; version: number; key: string }) {
      try {
        const tokens = await activities.refreshUpstreamToken(input);
        if (tokens.version === input.version + 1) observers.refreshed?.(input.upstream);
        return tokens;
      } catch (error) {
        if (isFinal(error)) {
          await observers.audit.record(
            {
              kind: 'upstream.refresh_failed',
              userId: input.userId,
              upstream: input.upstream,
              flowId: activityInfo()?.workflowExecution?.workflowId ?? null,
              outcome: error instanceof ApplicationFailure ? (error.type ?? 'failed') : 'unreachable',
              actor: 'gateway',
            },
            `refresh-failed:${input.key}`,
          );
        }
        throw error;
      }
    },
    async setUpstreamTokenStatus(input: { userId: string; upstream: string; status: UpstreamTokenStatus }) {
      await activities.setUpstreamTokenStatus(input);
      if (input.status !== 'needs_reconnect') return;
      const info = activityInfo();
      await observers.audit.record(
        { kind: 'upstream.needs_reconnect', userId: input.userId, upstream: input.upstream, flowId: info?.workflowExecution?.workflowId ?? null, outcome: 'needs_reconnect', actor: 'gateway' },
        info?.workflowExecution ? `needs-reconnect:${info.workflowExecution.runId}:${info.activityId}` : undefined,
      );
    },
  };
}

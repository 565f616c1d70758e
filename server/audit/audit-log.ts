import type { Logger } from '../log.js';
import type { AuditKind, AuditTrail, NewAuditEntry } from '../store/store.js';
import { countAudit } from '../metrics.js';

/** What a caller says about an action; the time is taken when it is recorded unless given. */
export type AuditInput = Omit<NewAuditEntry, 'at' | 'userId' | 'clientId' | 'upstream' | 'flowId' | 'sourceIp' | 'actor' | 'outcome'> &
  Partial<Pick<NewAuditEntry, 'at' | 'userId' | 'clientId' | 'upstream' | 'flowId' | 'sourceIp' | 'actor' | 'outcome'>> & { kind: AuditKind };

/** Records audit entries; what the routes, the OAuth server's events and the activities call. */
export interface AuditRecorder {
  /** Appends one entry (once per `dedupeKey`). Never throws: a failed write is logged, the action stands. */
  record(input: AuditInput, dedupeKey?: string): Promise<void>;
}

/**
 * The audit recorder over the store's append-only trail, also writing each new entry as one JSON
 * line to `stdout` when asked (for log shippers). Entries carry names and ids only.
 */
export function createAuditLog(deps: { store: AuditTrail; log: Pick<Logger, 'warn'>; stdout?: ((line: string) => void) | undefined }): AuditRecorder {
  return {
    async record(input, dedupeKey) {
      const entry: NewAuditEntry = {
        kind: input.kind,
        at: input.at ?? new Date().toISOString(),
        userId: input.userId ?? null,
        clientId: input.clientId ?? null,
        upstream: input.upstream ?? null,
        outcome: input.outcome ?? 'ok',
        flowId: input.flowId ?? null,
        sourceIp: input.sourceIp ?? null,
        actor: input.actor ?? null,
      };
      try {
        if (!(await deps.store.appendAudit(entry, dedupeKey))) return;
      } catch (error) {
        deps.log.warn('could not write an audit entry', { kind: entry.kind, error: String(error) });
        return;
      }
      countAudit(entry.kind, entry.upstream);
      deps.stdout?.(JSON.stringify({ type: 'audit', ...entry }));
    },
  };
}

/** Writes one line to the process's stdout (the audit switch's destination). */
export const stdoutLine = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

import { activityLog } from './log.js';
import type { FlowChange, FlowStore } from '../server/store/store.js';

/** Activities that keep the flow read model and the audit log. */
export function createFlowActivities({ store }: { store: FlowStore }) {
  return {
    /** Writes a flow's new status and its audit line; a retried attempt is a no-op. */
    async recordFlowChange(change: FlowChange): Promise<{ applied: boolean }> {
      const result = await store.recordFlowChange(change);
      if (!result.applied) activityLog().info('flow change already recorded', { flowId: change.flowId, sequence: change.sequence });
      return result;
    },
    /** Writes a flow's changes in order (all of them, when the flow ends); those already recorded are skipped. */
    async recordFlowChanges(changes: FlowChange[]): Promise<{ applied: number }> {
      const { applied } = await store.recordFlowChanges(changes);
      if (applied > 0 && changes.length > 0) activityLog().info('flow changes recorded when the flow ended', { flowId: changes[0]?.flowId, applied, of: changes.length });
      return { applied };
    },
  };
}

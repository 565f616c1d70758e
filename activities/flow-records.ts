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
  };
}

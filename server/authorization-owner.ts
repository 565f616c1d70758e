import { authorizationOwner, type AuthorizationOwner } from '../workflows/upstream-connect/messages.js';
import type { ElicitationStore, FlowStore, UpstreamAuthorizationRecord } from './store/store.js';

/**
 * Which flow a pending upstream authorization belongs to, confirmed by that flow's own record: a
 * connect from a URL elicitation link needs its elicitation, made for the same user and upstream; a
 * consent flow needs its row in the read model, for the same user. The owner id's form alone never
 * decides (an interaction uid could begin like a connect's owner id). `undefined` when neither holds.
 */
export async function confirmedAuthorizationOwner(
  store: Pick<ElicitationStore, 'getElicitation'> & Pick<FlowStore, 'getFlow'>,
  pending: Pick<UpstreamAuthorizationRecord, 'flowId' | 'userId' | 'upstream'>,
): Promise<AuthorizationOwner | undefined> {
  const named = authorizationOwner(pending.flowId);
  if (named.kind === 'connect') {
    const elicitation = await store.getElicitation(named.connectId);
    if (elicitation && elicitation.userId === pending.userId && elicitation.upstream === pending.upstream) return named;
  }
  const flow = await store.getFlow(pending.flowId);
  if (flow && flow.userId === pending.userId) return { kind: 'consent', flowId: pending.flowId };
  return undefined;
}

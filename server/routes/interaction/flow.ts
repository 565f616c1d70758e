import { ServiceError, WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { type ConsentFlowState, consentWorkflowId, flowState, type RememberedConsent } from '../../../workflows/consent-flow/messages.js';
import { finalStatuses } from '../../../workflows/consent-flow/steps.js';
import { ExpiredError, InvalidRequestError, InvalidTransitionError, NotFoundError, TemporarilyUnavailableError } from '../../errors.js';
import type { ConsentStore, FlowChange, FlowStore } from '../../store/store.js';

/** A consent flow's workflow handle, as a step update receives it. */
export type FlowHandle = ReturnType<Client['workflow']['getHandle']>;

/** Where the consent flow `uid` stands (its `flowState` query); a 404 when it has no workflow. */
export async function currentState(temporal: Client, uid: string): Promise<ConsentFlowState> {
  try {
    return await temporal.workflow.getHandle(consentWorkflowId(uid)).query(flowState);
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) throw new NotFoundError('no such consent flow');
    throw error;
  }
}

/** Temporal's gRPC status FAILED_PRECONDITION. */
const grpcFailedPrecondition = 9;

/** How many times a step update is sent in all when its workflow task fails. */
const lostUpdateAttempts = 3;

/**
 * Temporal's answer to an update whose workflow task failed: the task that ran it could not
 * complete (for one, a child connect's end arrived as the update ended the flow), so nothing of it
 * was kept, and the same update sent again runs in the next task.
 */
function updateLostToTaskFailure(error: unknown): boolean {
  if (!(error instanceof ServiceError)) return false;
  const cause = error.cause as { code?: unknown; details?: unknown; message?: unknown } | undefined;
  const text = `${String(cause?.details ?? '')} ${String(cause?.message ?? '')}`;
  return cause?.code === grpcFailedPrecondition && text.includes('workflow task failure');
}

/**
 * Writes a flow's move to the read model (the flow row and its audit line; a move written before
 * is skipped). The route that moved the flow writes it, so the row is current while the flow runs
 * (an upstream callback checks its owner there); a flow writes all its moves once more when it ends.
 * A final move needs no write here: the flow wrote it before its answer to the step came back.
 * A failed write is a 503: sending the same step again answers the same state and writes it.
 */
export async function recordFlowMove(store: Pick<FlowStore, 'recordFlowChange'>, change: FlowChange | undefined): Promise<void> {
  if (!change || (finalStatuses as readonly string[]).includes(change.status)) return;
  try {
    await store.recordFlowChange(change);
  } catch {
    throw new TemporarilyUnavailableError('the sign-in moved on but could not be saved; try again');
  }
}

/**
 * The consent the flow's user gave its client before, for the services step to pass on: the user
 * is the one the read model's row names (written when the flow left the identity step); `null` when
 * the row or the consent is missing, which shows the approve screen.
 */
export async function rememberedConsent(store: Pick<FlowStore, 'getFlow'> & Pick<ConsentStore, 'getConsent'>, flowId: string): Promise<RememberedConsent | null> {
  try {
    const flow = await store.getFlow(flowId);
    if (!flow?.userId) return null;
    const consent = await store.getConsent(flow.userId, flow.clientId);
    return consent ? { userId: consent.userId, upstreams: consent.upstreams, scopes: consent.scopes } : null;
  } catch {
    throw new TemporarilyUnavailableError('the sign-in could not be read; try again');
  }
}

/** What a step needs: Temporal to send it, the store to record the move. */
export interface StepDeps {
  temporal: Client;
  store: Pick<FlowStore, 'recordFlowChange'>;
}

/** Runs a step update and records the move it made; maps the workflow's refusals onto HTTP answers. */
export async function step({ temporal, store }: StepDeps, uid: string, run: (handle: FlowHandle) => Promise<ConsentFlowState>): Promise<ConsentFlowState> {
  const handle = temporal.workflow.getHandle(consentWorkflowId(uid));
  for (let attempt = 1; ; attempt += 1) {
    let state: ConsentFlowState;
    try {
      state = await run(handle);
    } catch (error) {
      if (attempt < lostUpdateAttempts && updateLostToTaskFailure(error)) continue;
      return refusal(temporal, uid, error);
    }
    await recordFlowMove(store, state.lastChange);
    return state;
  }
}

/** The HTTP answer for a step update that failed. */
async function refusal(temporal: Client, uid: string, error: unknown): Promise<never> {
  // Where the flow stands explains the refusal better than the error does: an expired flow
  // refuses every step, whether its workflow is still closing or already closed.
  const state = await currentState(temporal, uid).catch(() => undefined);
  if (state?.status === 'expired') throw new ExpiredError('this sign-in request has expired');
  if (error instanceof WorkflowUpdateFailedError && error.cause instanceof ApplicationFailure) {
    if (error.cause.type === 'invalid_transition') throw new InvalidTransitionError(error.cause.message);
    if (error.cause.type === 'invalid_request') throw new InvalidRequestError(error.cause.message);
  }
  if (state?.step === 'done') throw new InvalidTransitionError(`the flow has already ended: ${state.status}`);
  if (error instanceof WorkflowNotFoundError) throw new NotFoundError('no such consent flow');
  throw error;
}

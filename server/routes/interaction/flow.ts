import { ServiceError, WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { type ConsentFlowState, consentWorkflowId, flowState } from '../../../workflows/consent-flow/messages.js';
import { ExpiredError, InvalidRequestError, InvalidTransitionError, NotFoundError } from '../../errors.js';

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

/** Runs a step update; maps the workflow's refusals onto HTTP answers. */
export async function step(temporal: Client, uid: string, run: (handle: FlowHandle) => Promise<ConsentFlowState>): Promise<ConsentFlowState> {
  const handle = temporal.workflow.getHandle(consentWorkflowId(uid));
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await run(handle);
    } catch (error) {
      if (attempt < lostUpdateAttempts && updateLostToTaskFailure(error)) continue;
      return refusal(temporal, uid, error);
    }
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

import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
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

/** Runs a step update; maps the workflow's refusals onto HTTP answers. */
export async function step(temporal: Client, uid: string, run: (handle: FlowHandle) => Promise<ConsentFlowState>): Promise<ConsentFlowState> {
  const handle = temporal.workflow.getHandle(consentWorkflowId(uid));
  try {
    return await run(handle);
  } catch (error) {
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
}

import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { ChooseIdentityInput, ChooseServicesInput, ConsentFlowState, DecideInput } from './types.js';

/** Identity step: who the user is. Valid only while the flow is at `identity`. */
export const chooseIdentity = defineUpdate<ConsentFlowState, [ChooseIdentityInput]>('chooseIdentity');

/** Services step: which upstreams this client may use. Valid only at `services`. */
export const chooseServices = defineUpdate<ConsentFlowState, [ChooseServicesInput]>('chooseServices');

/** Approve step: the user's decision. Valid only at `approve`. */
export const decide = defineUpdate<ConsentFlowState, [DecideInput]>('decide');

/** The flow's current state; answers at any time, also after the flow ended. */
export const flowState = defineQuery<ConsentFlowState>('flowState');

import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { ChooseIdentityInput, ChooseServicesInput, ConnectUpstreamInput, ConsentFlowState, DecideInput, UpstreamCallbackInput } from './types.js';

/** Identity step: who the user is. Valid only while the flow is at `identity`. */
export const chooseIdentity = defineUpdate<ConsentFlowState, [ChooseIdentityInput]>('chooseIdentity');

/** Services step: which upstreams this client may use. Valid only at `services`. */
export const chooseServices = defineUpdate<ConsentFlowState, [ChooseServicesInput]>('chooseServices');

/** Services step: the user chose to connect an upstream; prepares its authorization. Valid only at `services`. */
export const connectUpstream = defineUpdate<ConsentFlowState, [ConnectUpstreamInput]>('connectUpstream');

/** Services step: the upstream's callback arrived; exchanges its code. Valid only at `services` with a pending connect. */
export const upstreamCallback = defineUpdate<ConsentFlowState, [UpstreamCallbackInput]>('upstreamCallback');

/** Approve step: the user's decision. Valid only at `approve`. */
export const decide = defineUpdate<ConsentFlowState, [DecideInput]>('decide');

/** The flow's current state; answers at any time, also after the flow ended. */
export const flowState = defineQuery<ConsentFlowState>('flowState');

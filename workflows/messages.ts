import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type {
  ChooseIdentityInput,
  ChooseServicesInput,
  ConnectUpstreamInput,
  ConsentFlowState,
  DecideInput,
  MarkNeedsReconnectInput,
  RefreshNowInput,
  RefreshNowResult,
  UpstreamCallbackInput,
  UpstreamConnectState,
  UpstreamGrantState,
  UpstreamTokenInfo,
} from './types.js';

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

/** Refreshes the grant's tokens unless a version newer than the caller's is there already; single-flight. */
export const refreshNow = defineUpdate<RefreshNowResult, [RefreshNowInput]>('refreshNow');

/** The upstream keeps refusing the token of the given version: the user has to reconnect. */
export const markNeedsReconnect = defineUpdate<UpstreamGrantState, [MarkNeedsReconnectInput]>('markNeedsReconnect');

/** A new connection stored new tokens (metadata only); also the signal of signal-with-start. */
export const upstreamConnected = defineSignal<[UpstreamTokenInfo]>('upstreamConnected');

/** The user disconnects: revoke at the upstream, delete the tokens, end the grant. */
export const disconnect = defineSignal('disconnect');

/** The grant's current state. */
export const grantState = defineQuery<UpstreamGrantState>('grantState');

/** A connect outside a consent flow: prepares the upstream authorization. Valid before it connected. */
export const beginConnect = defineUpdate<UpstreamConnectState, []>('beginConnect');

/** The upstream's callback for such a connect: exchanges its code. Valid while it authorizes. */
export const connectCallback = defineUpdate<UpstreamConnectState, [UpstreamCallbackInput]>('connectCallback');

/** Where such a connect stands. */
export const connectState = defineQuery<UpstreamConnectState>('connectState');

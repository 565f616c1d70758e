/**
 * Messages of `upstreamConnect` (one user connecting one upstream outside a consent flow): its
 * arguments, state, updates and query, and its workflow id. Callers import these, never the body.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';

/** Arguments of `upstreamConnect`: one user connecting one upstream, from a URL elicitation or for a consent flow. */
export interface UpstreamConnectInput {
  connectId: string;
  userId: string;
  upstream: string;
  ttlMs: number;
  /**
   * Set when a consent flow starts the connect as its child: the attempt begins at once, its pending
   * authorization belongs to that flow, the flow relays the callback (`relayCallback`) and hears of
   * every change (`connectChanged`); one attempt, ended connected, failed or expired.
   */
  consentFlowId?: string;
}

/** What `connectState` returns and the connect updates answer with. Metadata only. */
export interface UpstreamConnectState {
  connectId: string;
  userId: string;
  upstream: string;
  status: 'starting' | 'authorizing' | 'connected' | 'failed' | 'expired';
  error: string | null;
  message: string | null;
  /** Reference to the sealed authorization URL (not the URL). */
  authorizationRef: string | null;
  scopes: string[];
}

/** Argument of an upstream's callback (`upstreamCallback`, `connectCallback`): which pending authorization came back, never its code. */
export interface UpstreamCallbackInput {
  upstream: string;
  /** SHA-256 of the `state` the upstream returned. */
  stateHash: string;
  /** The upstream's error code when it refused (`access_denied`, ...). */
  error?: string;
}

/** A connect outside a consent flow: prepares the upstream authorization. Valid before it connected. */
export const beginConnect = defineUpdate<UpstreamConnectState, []>('beginConnect');

/** The upstream's callback for such a connect: exchanges its code. Valid while it authorizes. */
export const connectCallback = defineUpdate<UpstreamConnectState, [UpstreamCallbackInput]>('connectCallback');

/** Where such a connect stands. */
export const connectState = defineQuery<UpstreamConnectState>('connectState');

/** A consent flow relays the upstream's callback to its child connect (a workflow cannot send another an update). */
export const relayCallback = defineSignal<[UpstreamCallbackInput]>('relayCallback');

/** Workflow id of the connect started by a URL elicitation. */
export function upstreamConnectWorkflowId(connectId: string): string {
  return `connect:${connectId}`;
}

// Consent flow ids are oidc-provider interaction uids; a connect's owner id carries this prefix.
const connectFlowPrefix = 'connect-';

/** The pending-authorization owner id (`flowId` of upstream authorizations) of such a connect. */
export function upstreamConnectFlowId(connectId: string): string {
  return `${connectFlowPrefix}${connectId}`;
}

/** Which flow a pending upstream authorization belongs to: a consent flow, or a connect from a URL elicitation link. */
export type AuthorizationOwner = { kind: 'consent'; flowId: string } | { kind: 'connect'; connectId: string };

/** Reads the owner of a pending upstream authorization from its `flowId`; the inverse of {@link upstreamConnectFlowId}. */
export function authorizationOwner(flowId: string): AuthorizationOwner {
  return flowId.startsWith(connectFlowPrefix) ? { kind: 'connect', connectId: flowId.slice(connectFlowPrefix.length) } : { kind: 'consent', flowId };
}

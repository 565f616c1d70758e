/**
 * Messages of `consentFlow` (one consent flow: identity, services, approve): its arguments, state,
 * updates and query, search attributes and workflow id. Callers import these, never the body.
 */
import { defineSearchAttributeKey } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { FlowChange } from '../../activities/index.js';
import type { UpstreamCallbackInput, UpstreamConnectState } from '../upstream-connect/messages.js';
import { firstStep, type ClientRegistration, type ConsentStep, type ConsentStatus, type Decision, type IdentitySource } from './steps.js';

export type { ClientRegistration, ConsentStatus, ConsentStep, Decision, IdentitySource } from './steps.js';

/** The MCP client asking for access, as the approve screen names it. */
export interface ConsentClient {
  clientId: string;
  clientName: string | null;
  redirectHost: string | null;
  registration: ClientRegistration;
}

/** Arguments of `consentFlow`. Nothing secret: these land in workflow history as plain JSON. */
export interface ConsentFlowInput {
  flowId: string;
  client: ConsentClient;
  /** Upstream names the user may pick from. */
  upstreams: string[];
  /** Gateway scopes the client asked for. */
  scopes: string[];
  /** Lifetime of the whole flow; when it runs out, the outcome is `expired`. */
  ttlMs: number;
  /**
   * The workflow code's revision the flow was started at ({@link consentFlowRevision}); absent for
   * flows started before revisions, which replay with their patch markers and activities.
   */
  revision?: number;
}

/**
 * Revision 2: the flow takes every earlier `patched()` change as given (no patch markers), sets no
 * search attributes the start already set, and writes no read-model row per step: the route that
 * sent a step writes its {@link ConsentFlowState.lastChange}, and the flow writes all its changes
 * once when it ends (idempotent), so a write the route lost is made whole then.
 */
export const consentFlowRevision = 2;

/** How a flow ended. Expiry and deny are outcomes, not failures. */
export type ConsentOutcome =
  | { kind: 'approved'; userId: string; upstreams: string[]; scopes: string[]; remembered?: boolean }
  | { kind: 'denied'; userId: string | null }
  | { kind: 'expired'; step: ConsentStep };

/** Where a connect attempt at one upstream stands within this flow. Metadata only. */
export interface FlowConnection {
  status: 'pending' | 'connected' | 'failed';
  /** The upstream's OAuth error code (e.g. `access_denied`) when it failed. */
  error: string | null;
  /** A sentence for the user when it failed. */
  message: string | null;
  scopes: string[];
}

/** What `flowState` returns and every update answers with. */
export interface ConsentFlowState {
  flowId: string;
  step: ConsentStep;
  status: ConsentStatus;
  client: ConsentClient;
  userId: string | null;
  identitySource: IdentitySource | null;
  availableUpstreams: string[];
  chosenUpstreams: string[];
  scopes: string[];
  startedAt: string;
  expiresAt: string;
  outcome: ConsentOutcome | null;
  /** Connect attempts in this flow, by upstream. */
  connections: Record<string, FlowConnection>;
  /** Reference to the sealed authorization URL of the latest connect attempt (not the URL itself). */
  authorizationRef: string | null;
  /** The flow's latest move, as the read model records it; the route that sent the step writes it. */
  lastChange?: FlowChange;
}

/** A flow's first change (it entered its first step), as the route that started the flow records it. */
export function firstFlowChange(input: Pick<ConsentFlowInput, 'flowId' | 'client'>, at: Date): FlowChange {
  return { flowId: input.flowId, sequence: 1, clientId: input.client.clientId, userId: null, upstreams: [], status: firstStep.status, at: at.toISOString() };
}

/** `chooseIdentity` argument. */
export interface ChooseIdentityInput {
  userId: string;
  source: IdentitySource;
}

/** A consent the user gave the client before, as the services route found it in the store. */
export interface RememberedConsent {
  userId: string;
  upstreams: string[];
  scopes: string[];
}

/** `chooseServices` argument. */
export interface ChooseServicesInput {
  upstreams: string[];
  /**
   * The user's consent for this client, looked up by the services route (never taken from the
   * browser); `null` when there is none. A revision-2 flow skips the approve step when it covers the
   * choice and names the flow's user; older flows look it up themselves.
   */
  remembered?: RememberedConsent | null;
}

/** `connectUpstream` argument. */
export interface ConnectUpstreamInput {
  upstream: string;
}

/** `decide` argument. */
export interface DecideInput {
  decision: Decision;
}

/** Search attributes operators filter consent flows by (registered in `temporal-dev.yml`). */
export const searchAttributes = {
  userId: defineSearchAttributeKey('ConsentUserId', 'KEYWORD'),
  clientId: defineSearchAttributeKey('ConsentClientId', 'KEYWORD'),
  upstreams: defineSearchAttributeKey('ConsentUpstreams', 'KEYWORD_LIST'),
  status: defineSearchAttributeKey('ConsentFlowStatus', 'KEYWORD'),
} as const;

/** Workflow id of the consent flow with the given flow id. */
export function consentWorkflowId(flowId: string): string {
  return `consent:${flowId}`;
}

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

/** A child connect (`upstreamConnect` started by the services step) tells the flow where it stands. */
export const connectChanged = defineSignal<[UpstreamConnectState]>('connectChanged');

/** The flow's current state; answers at any time, also after the flow ended. */
export const flowState = defineQuery<ConsentFlowState>('flowState');

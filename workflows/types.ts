import { defineSearchAttributeKey } from '@temporalio/common';

/** Steps of a consent flow, in order. */
export const consentSteps = ['identity', 'services', 'approve', 'done'] as const;
export type ConsentStep = (typeof consentSteps)[number];

/** Flow status, as shown in the read model and the `ConsentFlowStatus` search attribute. */
export const consentStatuses = ['identifying', 'choosing_services', 'awaiting_approval', 'approved', 'denied', 'expired'] as const;
export type ConsentStatus = (typeof consentStatuses)[number];

/** How the MCP client got its client id at the gateway. */
export const clientRegistrations = ['dcr', 'cimd', 'static'] as const;
export type ClientRegistration = (typeof clientRegistrations)[number];

/** How the user proved who they are at the identity step (DESIGN.md, decision 9). */
export const identitySources = ['dev', 'oidc', 'header'] as const;
export type IdentitySource = (typeof identitySources)[number];

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
}

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
}

/** `chooseIdentity` argument. */
export interface ChooseIdentityInput {
  userId: string;
  source: IdentitySource;
}

/** `chooseServices` argument. */
export interface ChooseServicesInput {
  upstreams: string[];
}

/** `connectUpstream` argument. */
export interface ConnectUpstreamInput {
  upstream: string;
}

/** `upstreamCallback` argument: which pending authorization came back, never its code. */
export interface UpstreamCallbackInput {
  upstream: string;
  /** SHA-256 of the `state` the upstream returned. */
  stateHash: string;
  /** The upstream's error code when it refused (`access_denied`, ...). */
  error?: string;
}

/** `decide` argument. */
export interface DecideInput {
  decision: 'approve' | 'deny';
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

/** Where a user's grant at one upstream stands, as the `UpstreamGrantStatus` search attribute shows it. */
export const upstreamGrantStatuses = ['connected', 'needs_reconnect', 'disconnected'] as const;
export type UpstreamGrantStatus = (typeof upstreamGrantStatuses)[number];

/** Token metadata the grant workflow keeps: never a token. */
export interface UpstreamTokenInfo {
  /** Version of the stored access token (moves up with each connect and refresh). */
  version: number;
  /** Epoch seconds, or null when the upstream gave no lifetime. */
  expiresAt: number | null;
  /** Whether a refresh token is stored. */
  refreshable: boolean;
}

/** Arguments of `upstreamGrant` (also carried across continue-as-new). Nothing secret. */
export interface UpstreamGrantInput extends UpstreamTokenInfo {
  userId: string;
  upstream: string;
  /** Default `connected`; a continued run may start as `needs_reconnect`. */
  status?: Exclude<UpstreamGrantStatus, 'disconnected'>;
  /** Why the grant needs a reconnect, when it does. */
  reason?: string | null;
  /** Refreshes done in earlier runs (continue-as-new). */
  refreshes?: number;
  /** Continue-as-new once history has this many events (default 5000), unless the server suggests it earlier. */
  continueAsNewAfterEvents?: number;
}

/** What `grantState` returns and the grant's updates answer with. */
export interface UpstreamGrantState extends UpstreamTokenInfo {
  userId: string;
  upstream: string;
  status: UpstreamGrantStatus;
  /** When the next refresh is due (ISO 8601), or null. */
  nextRefreshAt: string | null;
  /** Why the grant needs a reconnect, or why the last refresh failed. */
  reason: string | null;
  /** Refreshes done over the grant's life. */
  refreshes: number;
}

/** `refreshNow` argument: the access token version the caller saw; a newer one makes the refresh unnecessary. */
export interface RefreshNowInput {
  reason: string;
  seenAccessTokenVersion: number;
}

/** `refreshNow` answer. */
export interface RefreshNowResult extends UpstreamGrantState {
  /** True when this call (or the one it shared) refreshed; false when a newer token was there already or none can be had. */
  refreshed: boolean;
}

/** `markNeedsReconnect` argument: the upstream still refused the token of this version. */
export interface MarkNeedsReconnectInput {
  reason: string;
  seenAccessTokenVersion: number;
}

/** How a grant workflow ended. */
export interface UpstreamGrantOutcome {
  status: 'disconnected';
  revoked: boolean;
}

/** Search attributes of the grant workflows (user and upstream shared with the consent flows). */
export const grantSearchAttributes = {
  userId: searchAttributes.userId,
  upstreams: searchAttributes.upstreams,
  status: defineSearchAttributeKey('UpstreamGrantStatus', 'KEYWORD'),
} as const;

/** Workflow id of a user's grant at one upstream: `grant:<userId>:<upstream>`, parts URI-encoded. */
export function upstreamGrantWorkflowId(userId: string, upstream: string): string {
  return `grant:${encodeURIComponent(userId)}:${encodeURIComponent(upstream)}`;
}

/** Arguments of `upstreamConnect`: one user connecting one upstream outside a consent flow (a URL elicitation). */
export interface UpstreamConnectInput {
  connectId: string;
  userId: string;
  upstream: string;
  ttlMs: number;
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

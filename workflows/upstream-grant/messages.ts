/**
 * Messages of `upstreamGrant` (one user's grant at one upstream): its arguments, state, updates,
 * signals and query, search attributes and workflow id. Callers import these, never the body.
 */
import { defineSearchAttributeKey } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { searchAttributes } from '../consent-flow/messages.js';

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

/** `requireScopes` argument: the upstream answered `insufficient_scope` to the token of this version, naming `scopes` (SEP-2350: already accumulated). */
export interface RequireScopesInput {
  scopes: string[];
  seenAccessTokenVersion: number;
}

/**
 * `requireScopes` answer: `authorize` (the scopes are recorded; the user authorizes them through the
 * connect link), `retry` (a newer token is there already), or `refused` (the upstream was asked for
 * these scopes too often and still does not grant them).
 */
export interface RequireScopesResult {
  outcome: 'authorize' | 'retry' | 'refused';
  scopes: string[];
}

/** How a grant workflow ended. */
export interface UpstreamGrantOutcome {
  status: 'disconnected';
  revoked: boolean;
}

/** Refreshes the grant's tokens unless a version newer than the caller's is there already; single-flight. */
export const refreshNow = defineUpdate<RefreshNowResult, [RefreshNowInput]>('refreshNow');

/** The upstream keeps refusing the token of the given version: the user has to reconnect. */
export const markNeedsReconnect = defineUpdate<UpstreamGrantState, [MarkNeedsReconnectInput]>('markNeedsReconnect');

/** The upstream wants more scopes (step-up, `insufficient_scope`): records them for the next authorization, with a limit on repeats. */
export const requireScopes = defineUpdate<RequireScopesResult, [RequireScopesInput]>('requireScopes');

/** A new connection stored new tokens (metadata only); also the signal of signal-with-start. */
export const upstreamConnected = defineSignal<[UpstreamTokenInfo]>('upstreamConnected');

/** The user disconnects: revoke at the upstream, delete the tokens, end the grant. */
export const disconnect = defineSignal('disconnect');

/** The grant's current state. */
export const grantState = defineQuery<UpstreamGrantState>('grantState');

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

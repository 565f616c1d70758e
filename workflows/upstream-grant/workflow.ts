import { failureOf } from '../failures.js';
import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  continueAsNew,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../../activities/index.js';
import {
  disconnect,
  grantSearchAttributes,
  grantState,
  markNeedsReconnect,
  refreshNow,
  requireScopes,
  upstreamConnected,
  type UpstreamGrantInput,
  type UpstreamGrantOutcome,
  type UpstreamGrantState,
  type UpstreamGrantStatus,
} from './messages.js';
import { markdownText } from '../markdown.js';

// Refreshing is waited on by `/mcp` callers: a few quick retries, then the caller gets the old state.
const { refreshUpstreamToken } = proxyActivities<Activities>({
  startToCloseTimeout: '15 seconds',
  retry: { initialInterval: '300 milliseconds', maximumInterval: '3 seconds', maximumAttempts: 5 },
});

const { revokeUpstreamTokens } = proxyActivities<Activities>({
  startToCloseTimeout: '15 seconds',
  retry: { initialInterval: '500 milliseconds', maximumInterval: '5 seconds', maximumAttempts: 3 },
});

const { deleteUpstreamTokens, setUpstreamTokenStatus, requireUpstreamScopes } = proxyActivities<Activities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '200 milliseconds', maximumInterval: '10 seconds' },
});

/**
 * Refresh this long before expiry at most; 10 % of the lifetime for shorter tokens, but never less
 * than half the lifetime or 5 s, whichever is smaller, so the refresh itself fits before expiry.
 */
const maxRefreshMarginMs = 60_000;
const minRefreshMarginMs = 5_000;
/** After a refresh failed for a reason other than the grant itself, try again this much later. */
const retryAfterFailureMs = 30_000;
/** Continue-as-new at this many events even if the server does not suggest it yet. */
const maxHistoryEvents = 5_000;

/**
 * With this patch, a refresh timer that fires after the grant moved on (a refresh or reconnect that
 * ended in the same activation) refreshes nothing: the new token is not due. Runs whose history
 * lacks the marker (test/histories/untraced/upstream-grant-timer-after-refresh.json) go on without it.
 */
const timerChecksTokenPatch = 'timer-checks-token';

/** Incremental authorizations of one scope set before the gateway stops asking the user for it (SEP-2350 step-up). */
const maxStepUps = 2;

/** OAuth errors after which only the user can help: the grant is gone at the upstream. */
const reconnectErrors = new Set(['invalid_grant', 'unauthorized_client', 'invalid_client', 'authorization_server_changed']);

function describe(state: UpstreamGrantState): string {
  switch (state.status) {
    case 'connected':
      if (state.nextRefreshAt) return `Connected; next refresh at ${state.nextRefreshAt} (token version ${state.version}).`;
      return `Connected; token version ${state.version}${state.expiresAt ? ', not refreshable' : ', no expiry'}.`;
    case 'needs_reconnect':
      return `Needs reconnect: ${state.reason ? markdownText(state.reason) : 'the upstream refused the grant'}. Waiting for the user to reconnect or disconnect.`;
    case 'disconnected':
      return 'Disconnected; tokens deleted.';
  }
}

/**
 * One user's grant at one upstream (workflow id `grant:<userId>:<upstream>`): the single writer of
 * that user's tokens for it after the connect. Refreshes before expiry and on demand (`refreshNow`,
 * single-flight across callers), marks the grant `needs_reconnect` when the upstream refuses it,
 * and on `disconnect` revokes at the upstream, deletes the tokens and ends. Only metadata (versions,
 * expiry times) passes through here; the activities hold the tokens.
 */
export async function upstreamGrant(input: UpstreamGrantInput): Promise<UpstreamGrantOutcome> {
  // Taken once, first thing: runs started before the patch keep their behaviour to the end of the run.
  const timerChecksToken = patched(timerChecksTokenPatch);
  const workflowId = workflowInfo().workflowId;
  const state: UpstreamGrantState = {
    userId: input.userId,
    upstream: input.upstream,
    status: input.status ?? 'connected',
    version: input.version,
    expiresAt: input.expiresAt,
    refreshable: input.refreshable,
    nextRefreshAt: null,
    reason: input.reason ?? null,
    refreshes: input.refreshes ?? 0,
  };
  /** When the token's lifetime was learnt (ms), to size the refresh margin. */
  let learntAt = Date.now();
  let retryNotBefore = 0;
  let busy = false;
  let disconnectRequested = false;
  /** Moves on with every change the main loop must look at again. */
  let generation = 0;

  function refreshDueAt(): number | null {
    if (state.status !== 'connected' || !state.refreshable || state.expiresAt === null) return null;
    const expiresAtMs = state.expiresAt * 1000;
    const lifetime = Math.max(0, expiresAtMs - learntAt);
    const margin = Math.min(maxRefreshMarginMs, Math.max(lifetime / 10, Math.min(lifetime / 2, minRefreshMarginMs)));
    return Math.max(expiresAtMs - margin, retryNotBefore);
  }

  function show(status: UpstreamGrantStatus): void {
    state.status = status;
    const due = refreshDueAt();
    state.nextRefreshAt = due === null ? null : new Date(due).toISOString();
    upsertSearchAttributes([
      { key: grantSearchAttributes.userId, value: state.userId },
      { key: grantSearchAttributes.upstreams, value: [state.upstream] },
      { key: grantSearchAttributes.status, value: status },
    ]);
    setCurrentDetails(describe(state));
    generation += 1;
  }

  /** Runs `step` alone: refreshes, reconnect marks and the disconnect never overlap. */
  async function exclusive<T>(step: () => Promise<T>): Promise<T> {
    // Every waiter's condition turns true in the same activation: re-check after waking, then take it.
    while (busy) await condition(() => !busy);
    busy = true;
    try {
      return await step();
    } finally {
      busy = false;
    }
  }

  async function needsReconnect(reason: string): Promise<void> {
    state.reason = reason;
    show('needs_reconnect');
    await setUpstreamTokenStatus.executeWithOptions({ startToCloseTimeout: '10 seconds', summary: 'Record: needs reconnect' }, [
      { userId: state.userId, upstream: state.upstream, status: 'needs_reconnect' },
    ]);
  }

  /** Refreshes the tokens of version `from`; false when another step already moved past it or refreshing failed. */
  async function refresh(from: number, reason: string): Promise<boolean> {
    if (state.version !== from || state.status !== 'connected' || !state.refreshable || disconnectRequested) return false;
    try {
      const tokens = await refreshUpstreamToken.executeWithOptions(
        {
          startToCloseTimeout: '15 seconds',
          retry: { initialInterval: '300 milliseconds', maximumInterval: '3 seconds', maximumAttempts: 5 },
          summary: `Refresh the token at ${state.upstream} (${reason})`,
        },
        [{ userId: state.userId, upstream: state.upstream, version: from, key: `refresh:${workflowId}:${from}` }],
      );
      const moved = tokens.version > from;
      state.version = tokens.version;
      state.expiresAt = tokens.expiresAt;
      state.refreshable = tokens.refreshable;
      state.reason = null;
      if (moved) state.refreshes += 1;
      learntAt = Date.now();
      retryNotBefore = 0;
      show('connected');
      return moved;
    } catch (error) {
      const failure = failureOf(error);
      if (reconnectErrors.has(failure.code)) {
        await needsReconnect(failure.code);
      } else {
        log.warn('refresh failed; will try again', { upstream: state.upstream, error: failure.code });
        state.reason = `refresh failed: ${failure.code}`;
        retryNotBefore = Date.now() + retryAfterFailureMs;
        show('connected');
      }
      return false;
    }
  }

  show(state.status);

  setHandler(grantState, () => state);

  setHandler(
    refreshNow,
    async ({ reason, seenAccessTokenVersion }) => {
      // Callers that saw the same version queue here; the first refreshes, the others find a newer version.
      const refreshed = await exclusive(() => refresh(seenAccessTokenVersion, reason));
      return { ...state, refreshed: refreshed || state.version > seenAccessTokenVersion };
    },
    {
      validator: ({ seenAccessTokenVersion, reason }) => {
        if (!Number.isInteger(seenAccessTokenVersion) || seenAccessTokenVersion < 0) {
          throw ApplicationFailure.nonRetryable('seenAccessTokenVersion must be a non-negative integer', 'invalid_request');
        }
        if (typeof reason !== 'string' || reason.length > 200) throw ApplicationFailure.nonRetryable('reason must be a short text', 'invalid_request');
      },
    },
  );

  setHandler(
    markNeedsReconnect,
    async ({ reason, seenAccessTokenVersion }) => {
      await exclusive(async () => {
        // A token newer than the refused one may work: nothing to mark.
        if (state.status !== 'connected' || state.version > seenAccessTokenVersion) return;
        await needsReconnect(reason);
      });
      return state;
    },
    {
      validator: ({ reason, seenAccessTokenVersion }) => {
        if (!Number.isInteger(seenAccessTokenVersion)) throw ApplicationFailure.nonRetryable('seenAccessTokenVersion must be an integer', 'invalid_request');
        if (typeof reason !== 'string' || reason.length > 200) throw ApplicationFailure.nonRetryable('reason must be a short text', 'invalid_request');
      },
    },
  );

  /** Step-ups asked per accumulated scope set, and the token version each was last asked for. */
  const stepUps = new Map<string, { count: number; version: number }>();

  setHandler(
    requireScopes,
    async ({ scopes, seenAccessTokenVersion }) =>
      exclusive(async () => {
        const wanted = [...new Set(scopes)].sort();
        if (state.version > seenAccessTokenVersion) return { outcome: 'retry' as const, scopes: wanted };
        const key = wanted.join(' ');
        const asked = stepUps.get(key) ?? { count: 0, version: -1 };
        // Repeated calls on one token share one step-up; each new token that still lacks the scopes counts once.
        if (asked.version !== state.version) {
          if (asked.count >= maxStepUps) return { outcome: 'refused' as const, scopes: wanted };
          stepUps.set(key, { count: asked.count + 1, version: state.version });
          await requireUpstreamScopes.executeWithOptions({ startToCloseTimeout: '10 seconds', summary: `Record the scopes ${state.upstream} asks for` }, [
            { userId: state.userId, upstream: state.upstream, scopes: wanted },
          ]);
        }
        return { outcome: 'authorize' as const, scopes: wanted };
      }),
    {
      validator: ({ scopes, seenAccessTokenVersion }) => {
        if (!Number.isInteger(seenAccessTokenVersion)) throw ApplicationFailure.nonRetryable('seenAccessTokenVersion must be an integer', 'invalid_request');
        if (!Array.isArray(scopes) || scopes.length === 0 || scopes.length > 50 || scopes.some((scope) => typeof scope !== 'string' || !/^[\x21\x23-\x5b\x5d-\x7e]{1,200}$/.test(scope))) {
          throw ApplicationFailure.nonRetryable('scopes must be 1 to 50 scope tokens (RFC 6749 §3.3)', 'invalid_request');
        }
      },
    },
  );

  setHandler(upstreamConnected, (tokens) => {
    // A signal from an older connect may arrive after a newer refresh: versions only move forward.
    if (tokens.version < state.version) return;
    state.version = tokens.version;
    state.expiresAt = tokens.expiresAt;
    state.refreshable = tokens.refreshable;
    state.reason = null;
    learntAt = Date.now();
    retryNotBefore = 0;
    show('connected');
  });

  setHandler(disconnect, () => {
    disconnectRequested = true;
    generation += 1;
  });

  for (;;) {
    const seen = generation;
    const due = refreshDueAt();
    const changed = () => disconnectRequested || generation !== seen;
    const woken = due === null ? (await condition(changed), true) : await condition(changed, Math.max(due - Date.now(), 1));
    if (disconnectRequested) break;
    if (!woken && !timerChecksToken) {
      if (!busy) await exclusive(() => refresh(state.version, 'before expiry'));
    } else if (!woken) {
      // The timer was set for the grant as it was at `seen`. A step that ends in the same activation
      // (a refresh asked for by `refreshNow`) finishes first, and a grant that moved on meanwhile (a
      // new token, a failure that put the next try off) is looked at again instead of refreshed.
      await condition(() => (allHandlersFinished() && !busy) || disconnectRequested);
      if (disconnectRequested) break;
      if (generation === seen) await exclusive(() => refresh(state.version, 'before expiry'));
    }
    const info = workflowInfo();
    if (info.continueAsNewSuggested || info.historyLength > (input.continueAsNewAfterEvents ?? maxHistoryEvents)) {
      await condition(() => allHandlersFinished() && !busy);
      if (disconnectRequested) break;
      await continueAsNew<typeof upstreamGrant>({
        userId: state.userId,
        upstream: state.upstream,
        version: state.version,
        expiresAt: state.expiresAt,
        refreshable: state.refreshable,
        status: state.status === 'needs_reconnect' ? 'needs_reconnect' : 'connected',
        reason: state.reason,
        refreshes: state.refreshes,
        ...(input.continueAsNewAfterEvents ? { continueAsNewAfterEvents: input.continueAsNewAfterEvents } : {}),
      });
    }
  }

  const revoked = await exclusive(async () => {
    let done = false;
    try {
      ({ revoked: done } = await revokeUpstreamTokens.executeWithOptions(
        { startToCloseTimeout: '15 seconds', retry: { maximumAttempts: 3 }, summary: `Revoke the tokens at ${state.upstream}` },
        [{ userId: state.userId, upstream: state.upstream }],
      ));
    } catch (error) {
      // The user asked to be disconnected: the tokens are deleted here whatever the upstream says.
      log.warn('revocation at the upstream failed', { upstream: state.upstream, error: failureOf(error).code });
    }
    await deleteUpstreamTokens.executeWithOptions({ startToCloseTimeout: '10 seconds', summary: 'Delete the stored tokens' }, [
      { userId: state.userId, upstream: state.upstream },
    ]);
    show('disconnected');
    return done;
  });
  await condition(allHandlersFinished);
  return { status: 'disconnected', revoked };
}

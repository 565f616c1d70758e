/**
 * The floor for `bench/consent-flows.ts`: a workflow shaped like the consent flow (three updates
 * in order, each rejected by its validator out of turn, ended by the last one or by a timer) but
 * with nothing of the gateway's own: no activities, no search attribute upserts, no current
 * details. Its rate is what Temporal itself costs for that shape. Bundled on its own by the
 * benchmark, so it imports only `@temporalio/workflow`.
 */
import { allHandlersFinished, ApplicationFailure, condition, defineUpdate, setHandler } from '@temporalio/workflow';

/** Steps of the bare flow, in order. */
export type BareStep = 'identity' | 'services' | 'approve' | 'done';

/** What every update answers with: a much smaller state than the consent flow's. */
export interface BareState {
  step: BareStep;
  userId: string | null;
  upstreams: string[];
  decision: 'approve' | 'deny' | null;
}

/** First update: same argument shape as the consent flow's `chooseIdentity`. */
export const bareChooseIdentity = defineUpdate<BareState, [{ userId: string; source: string }]>('chooseIdentity');

/** Second update: same argument shape as `chooseServices`. */
export const bareChooseServices = defineUpdate<BareState, [{ upstreams: string[] }]>('chooseServices');

/** Third update: same argument shape as `decide`; ends the flow. */
export const bareDecide = defineUpdate<BareState, [{ decision: 'approve' | 'deny' }]>('decide');

/** Runs until `decide` arrives or `ttlMs` passes; returns the decision, or "expired". */
export async function bareFlow(ttlMs: number): Promise<string> {
  const state: BareState = { step: 'identity', userId: null, upstreams: [], decision: null };

  const requireStep = (expected: BareStep) => {
    if (state.step !== expected) throw ApplicationFailure.nonRetryable(`at step "${state.step}", not "${expected}"`, 'invalid_transition');
  };
  const invalid = (message: string) => ApplicationFailure.nonRetryable(message, 'invalid_request');

  setHandler(
    bareChooseIdentity,
    ({ userId }) => {
      state.userId = userId;
      state.step = 'services';
      return state;
    },
    {
      validator: ({ userId }) => {
        requireStep('identity');
        if (typeof userId !== 'string' || userId === '') throw invalid('userId must not be empty');
      },
    },
  );
  setHandler(
    bareChooseServices,
    ({ upstreams }) => {
      state.upstreams = upstreams;
      state.step = 'approve';
      return state;
    },
    {
      validator: ({ upstreams }) => {
        requireStep('services');
        if (!Array.isArray(upstreams)) throw invalid('upstreams must be a list');
      },
    },
  );
  setHandler(
    bareDecide,
    ({ decision }) => {
      state.decision = decision;
      state.step = 'done';
      return state;
    },
    {
      validator: ({ decision }) => {
        requireStep('approve');
        if (decision !== 'approve' && decision !== 'deny') throw invalid('decision must be approve or deny');
      },
    },
  );

  // The timer mirrors the consent flow's expiry, which is part of its shape, not gateway overhead.
  const decided = await condition(() => state.decision !== null, ttlMs);
  await condition(allHandlersFinished);
  return decided ? (state.decision ?? 'expired') : 'expired';
}

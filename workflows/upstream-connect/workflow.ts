import { ApplicationFailure, condition, proxyActivities, setCurrentDetails, setHandler, allHandlersFinished } from '@temporalio/workflow';
import type { Activities } from '../../activities/index.js';
import { failureOf } from '../failures.js';
import { beginConnect, connectCallback, connectState, upstreamConnectFlowId, type UpstreamConnectInput, type UpstreamConnectState } from './messages.js';
import { markdownText } from '../markdown.js';

const { prepareUpstreamAuthorization, exchangeUpstreamCode } = proxyActivities<Activities>({
  startToCloseTimeout: '15 seconds',
  retry: { initialInterval: '500 milliseconds', maximumInterval: '5 seconds', maximumAttempts: 4 },
});

/**
 * One user connecting one upstream from a URL elicitation link, outside a consent flow: prepare
 * the authorization (PKCE, state; sealed in the store), wait for the callback, exchange the code.
 * Ends connected, or expired; a failed attempt may begin again. No secret passes through here.
 */
export async function upstreamConnect(input: UpstreamConnectInput): Promise<UpstreamConnectState> {
  const state: UpstreamConnectState = {
    connectId: input.connectId,
    userId: input.userId,
    upstream: input.upstream,
    status: 'starting',
    error: null,
    message: null,
    authorizationRef: null,
    scopes: [],
  };
  const flowId = upstreamConnectFlowId(input.connectId);
  const show = () =>
    setCurrentDetails(`**Connect ${markdownText(state.upstream)} for ${markdownText(state.userId)}:** ${state.status}${state.error ? ` (${markdownText(`${state.error}: ${state.message}`)})` : ''}`);
  show();

  setHandler(connectState, () => state);

  setHandler(
    beginConnect,
    async () => {
      state.status = 'authorizing';
      state.error = null;
      state.message = null;
      show();
      try {
        const { authorizationRef } = await prepareUpstreamAuthorization.executeWithOptions(
          { startToCloseTimeout: '15 seconds', retry: { maximumAttempts: 4 }, summary: `Prepare authorization at ${state.upstream}` },
          [{ flowId, upstream: state.upstream, userId: state.userId }],
        );
        state.authorizationRef = authorizationRef;
      } catch (error) {
        const failure = failureOf(error);
        Object.assign(state, { status: 'failed', error: failure.code, message: failure.message, authorizationRef: null });
      }
      show();
      return state;
    },
    {
      validator: () => {
        if (state.status === 'connected' || state.status === 'expired') {
          throw ApplicationFailure.nonRetryable(`the connect is ${state.status}`, 'invalid_transition');
        }
      },
    },
  );

  setHandler(
    connectCallback,
    async ({ stateHash, error }) => {
      if (error) {
        Object.assign(state, { status: 'failed', error, message: `the upstream answered ${error}` });
      } else {
        try {
          const connection = await exchangeUpstreamCode.executeWithOptions(
            { startToCloseTimeout: '15 seconds', retry: { maximumAttempts: 4 }, summary: `Exchange the code from ${state.upstream} and store the tokens` },
            [{ flowId, upstream: state.upstream, stateHash }],
          );
          Object.assign(state, { status: 'connected', error: null, message: null, scopes: connection.scopes });
        } catch (caught) {
          const failure = failureOf(caught);
          Object.assign(state, { status: 'failed', error: failure.code, message: failure.message });
        }
      }
      state.authorizationRef = null;
      show();
      return state;
    },
    {
      validator: ({ upstream }) => {
        if (state.status !== 'authorizing' || upstream !== state.upstream) {
          throw ApplicationFailure.nonRetryable('no authorization is waiting for its callback', 'invalid_transition');
        }
      },
    },
  );

  if (!(await condition(() => state.status === 'connected', input.ttlMs))) {
    state.status = 'expired';
    show();
  }
  await condition(allHandlersFinished);
  return state;
}

import { allHandlersFinished, ApplicationFailure, condition, getExternalWorkflowHandle, log, proxyActivities, setCurrentDetails, setHandler } from '@temporalio/workflow';
import type { Activities } from '../../activities/index.js';
import { connectChanged, consentWorkflowId } from '../consent-flow/messages.js';
import { failureOf } from '../failures.js';
import {
  beginConnect,
  connectCallback,
  connectState,
  relayCallback,
  upstreamConnectFlowId,
  type UpstreamCallbackInput,
  type UpstreamConnectInput,
  type UpstreamConnectState,
} from './messages.js';
import { markdownText } from '../markdown.js';

const { prepareUpstreamAuthorization, exchangeUpstreamCode } = proxyActivities<Activities>({
  startToCloseTimeout: '15 seconds',
  retry: { initialInterval: '500 milliseconds', maximumInterval: '5 seconds', maximumAttempts: 4 },
});

/**
 * One user connecting one upstream: prepare the authorization (PKCE, state; sealed in the store),
 * wait for the callback, exchange the code. From a URL elicitation link it ends connected or
 * expired, and a failed attempt may begin again. As a consent flow's child (`consentFlowId`) it
 * begins at once, reports each change to the flow and ends after one attempt. No secret passes
 * through here.
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
  const parent = input.consentFlowId;
  // The pending authorization's owner: the consent flow for its child, else this connect.
  const flowId = parent ?? upstreamConnectFlowId(input.connectId);
  const show = () =>
    setCurrentDetails(`**Connect ${markdownText(state.upstream)} for ${markdownText(state.userId)}:** ${state.status}${state.error ? ` (${markdownText(`${state.error}: ${state.message}`)})` : ''}`);

  /** Tells the consent flow that started this connect where it stands. */
  async function report(): Promise<void> {
    show();
    if (!parent) return;
    try {
      await getExternalWorkflowHandle(consentWorkflowId(parent)).signal(connectChanged, { ...state });
    } catch (error) {
      // The flow ended meanwhile: nobody waits for this connect any more.
      log.info('the consent flow is gone', { error: String(error) });
    }
  }

  async function begin(): Promise<UpstreamConnectState> {
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
    await report();
    return state;
  }

  async function receive({ stateHash, error }: UpstreamCallbackInput): Promise<UpstreamConnectState> {
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
    await report();
    return state;
  }

  const waitsForCallback = (upstream: string) => state.status === 'authorizing' && upstream === state.upstream;

  show();
  setHandler(connectState, () => state);

  setHandler(beginConnect, begin, {
    validator: () => {
      if (state.status === 'connected' || state.status === 'expired') {
        throw ApplicationFailure.nonRetryable(`the connect is ${state.status}`, 'invalid_transition');
      }
    },
  });

  setHandler(connectCallback, receive, {
    validator: ({ upstream }) => {
      if (!waitsForCallback(upstream)) throw ApplicationFailure.nonRetryable('no authorization is waiting for its callback', 'invalid_transition');
    },
  });

  // A signal has no validator: one that is not awaited answers with where the connect stands.
  setHandler(relayCallback, async (callback) => {
    if (waitsForCallback(callback.upstream)) await receive(callback);
    else await report();
  });

  if (parent) await begin();
  const ended = () => state.status === 'connected' || (parent !== undefined && state.status === 'failed');
  if (!(await condition(ended, input.ttlMs))) {
    state.status = 'expired';
    await report();
  }
  await condition(allHandlersFinished);
  return state;
}

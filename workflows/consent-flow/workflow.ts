import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
  type ChildWorkflowHandle,
} from '@temporalio/workflow';
import type { Activities, FlowChange } from '../../activities/index.js';
import { failureOf } from '../failures.js';
import { relayCallback, upstreamConnectWorkflowId, type UpstreamConnectState } from '../upstream-connect/messages.js';
import type { upstreamConnect } from '../upstream-connect/workflow.js';
import {
  chooseIdentity,
  chooseServices,
  connectChanged,
  connectUpstream,
  consentFlowRevision,
  decide,
  flowState,
  searchAttributes,
  upstreamCallback,
  type ConsentFlowInput,
  type ConsentFlowState,
  type ConsentOutcome,
  type ConsentStatus,
  type ConsentStep,
  type FlowConnection,
} from './messages.js';
import { firstStep, stepAfter, stepCounter, stepRow, type OpenStep } from './steps.js';
import { markdownText } from '../markdown.js';

const remoteStore = proxyActivities<Activities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '200 milliseconds', maximumInterval: '5 seconds' },
});

// Store reads and writes are quick and local to the worker: as local activities they cost no
// extra workflow tasks or history events (each is idempotent, so a retry after a crash is safe).
const localStore = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '200 milliseconds', maximumInterval: '5 seconds' },
});

/** Flows started before the store activities became local replay with the remote ones. */
const localStorePatch = 'local-store-activities';

// Upstream calls: a few quick retries for the network, then the user sees the failure and may try again.
const { prepareUpstreamAuthorization, exchangeUpstreamCode } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '500 milliseconds', maximumInterval: '5 seconds', maximumAttempts: 4 },
});

/** Flows started before consent was remembered replay without these activities. */
const rememberConsentPatch = 'remember-consent';

/**
 * Flows decided before the consent was saved by the consent route, once the authorization result is
 * stored (so a decision whose authorization fails pre-approves nothing), replay saving it here.
 */
const consentSavedByRoutePatch = 'consent-saved-after-authorization';

/** Flows that began a connect before connects became child `upstreamConnect` workflows replay with their own activities. */
const connectAsChildPatch = 'connect-as-child';

/** How long a connect waits for its child's answer before the user is told to try again. */
const childAnswerTimeout = '2 minutes';

/** An upstream's connection in this flow, as its child connect reports it. */
function connectionOf(child: UpstreamConnectState): FlowConnection {
  const status = child.status === 'connected' ? 'connected' : child.status === 'failed' || child.status === 'expired' ? 'failed' : 'pending';
  const message = child.message ?? (child.status === 'expired' ? 'the connection attempt expired' : null);
  return { status, error: child.error ?? (child.status === 'expired' ? 'expired' : null), message, scopes: child.scopes };
}

function covers(granted: { upstreams: string[]; scopes: string[] }, wanted: { upstreams: string[]; scopes: string[] }): boolean {
  return wanted.upstreams.every((name) => granted.upstreams.includes(name)) && wanted.scopes.every((scope) => granted.scopes.includes(scope));
}

const maxUserIdLength = 256;

function describe(state: ConsentFlowState): string {
  // Client and user names came from outside: literal text, never Markdown (markdown.ts).
  const client = markdownText(state.client.clientName ?? state.client.clientId);
  const user = state.userId ? markdownText(state.userId) : 'not signed in yet';
  const lines = [`**Client:** ${client} (${state.client.registration}, redirects to ${state.client.redirectHost ? markdownText(state.client.redirectHost) : 'n/a'})`, `**User:** ${user}`];
  if (state.step === 'done') {
    lines.unshift(`**Finished: ${state.status}.**`);
  } else {
    const among = { identity: '', services: `: ${markdownText(state.availableUpstreams.join(', ')) || 'none'}`, approve: `: ${markdownText(state.chosenUpstreams.join(', ')) || 'no upstream'}` }[state.step];
    lines.unshift(`**${stepCounter(state.step)}: ${state.step}.** Waiting for ${stepRow(state.step).waitingFor}${among}.`);
  }
  const connections = Object.entries(state.connections).map(([name, connection]) => markdownText(`${name}: ${connection.status}${connection.error ? ` (${connection.error})` : ''}`));
  if (state.step === 'services' && connections.length > 0) lines.push(`**Connections:** ${connections.join(', ')}`);
  lines.push(`**Expires:** ${state.expiresAt}`);
  return lines.join('\n\n');
}

/**
 * One consent flow: identity → services → approve, ended by the user's decision or by expiry.
 * Each step is a workflow update whose validator rejects it unless the flow is at that step, so a
 * bad transition never reaches history. Nothing secret passes through here.
 */
export async function consentFlow(input: ConsentFlowInput): Promise<ConsentOutcome> {
  // A flow started at the current revision takes every change below as given, without a patch
  // marker (each costs a history event and a search attribute upsert); older flows replay with them.
  const current = (input.revision ?? 1) >= consentFlowRevision;
  const uses = (patch: string): boolean => current || patched(patch);
  const { recordFlowChange, recordFlowChanges, findConsent, saveConsent } = uses(localStorePatch) ? localStore : remoteStore;
  const startedAt = new Date(workflowInfo().startTime);
  const state: ConsentFlowState = {
    flowId: input.flowId,
    step: 'identity',
    status: 'identifying',
    client: input.client,
    userId: null,
    identitySource: null,
    availableUpstreams: [...input.upstreams],
    chosenUpstreams: [],
    scopes: [...input.scopes],
    startedAt: startedAt.toISOString(),
    expiresAt: new Date(startedAt.getTime() + input.ttlMs).toISOString(),
    outcome: null,
    connections: {},
    authorizationRef: null,
  };
  let sequence = 0;
  const changes: FlowChange[] = [];
  // Store writes go out one at a time, in the order the flow moved, whatever the handlers' timing.
  let writes: Promise<unknown> = Promise.resolve();

  /** Enters the step the table puts after `step`, with its status; the last step ends only by a decision or expiry. */
  function advanceFrom(step: OpenStep): Promise<void> {
    const next = stepAfter(step);
    if (next === 'done') throw new Error(`${step} is the last step: a decision ends the flow`);
    return moveTo(next, stepRow(next).status);
  }

  /** Moves the flow synchronously (so a handler that runs next sees the new step), then records it. */
  function moveTo(step: ConsentStep, status: ConsentStatus): Promise<void> {
    state.step = step;
    state.status = status;
    // The start set the first step's attributes (startConsentFlow); a current flow does not repeat them.
    if (!current || sequence > 0) {
      upsertSearchAttributes([
        { key: searchAttributes.status, value: status },
        ...(state.userId ? [{ key: searchAttributes.userId, value: state.userId }] : []),
        { key: searchAttributes.upstreams, value: state.chosenUpstreams.length ? state.chosenUpstreams : state.availableUpstreams },
      ]);
    }
    setCurrentDetails(describe(state));
    sequence += 1;
    const change: FlowChange = {
      flowId: state.flowId,
      sequence,
      clientId: state.client.clientId,
      userId: state.userId,
      upstreams: [...state.chosenUpstreams],
      status,
      at: new Date().toISOString(),
    };
    changes.push(change);
    state.lastChange = change;
    // A current flow's routes write each move; the flow writes them all when it ends.
    if (current) return Promise.resolve();
    const write = writes.then(() =>
      recordFlowChange.executeWithOptions({ startToCloseTimeout: '10 seconds', summary: `Record flow status: ${status}` }, [change]),
    );
    writes = write.catch(() => undefined);
    return write.then(() => undefined);
  }

  // Enter the first step before any handler exists: an update delivered with the start runs as
  // soon as its handler is registered and must find the flow at this step.
  const entered = moveTo(firstStep.step, firstStep.status);

  function requireStep(step: ConsentStep): void {
    if (state.step !== step) {
      throw ApplicationFailure.nonRetryable(`the flow is at step "${state.step}", not "${step}"`, 'invalid_transition');
    }
  }

  setHandler(flowState, () => state);

  // Each connect at the services step is a child `upstreamConnect`; the latest attempt at an
  // upstream (named before its child starts, so its first report is never missed) decides there.
  const latestConnect = new Map<string, string>();
  const childConnects = new Map<string, ChildWorkflowHandle<typeof upstreamConnect>>();
  let connectAttempts = 0;

  setHandler(connectChanged, (child) => {
    if (latestConnect.get(child.upstream) !== child.connectId) return;
    state.connections[child.upstream] = connectionOf(child);
    state.authorizationRef = child.status === 'authorizing' ? child.authorizationRef : null;
    setCurrentDetails(describe(state));
  });

  /** Waits until the upstream's connection is no longer pending, or `ready` holds; a child that never answers is a failure. */
  async function childAnswer(upstream: string, ready: () => boolean = () => false): Promise<void> {
    if (await condition(() => ready() || state.connections[upstream]?.status !== 'pending', childAnswerTimeout)) return;
    state.connections[upstream] = { status: 'failed', error: 'temporarily_unavailable', message: 'the connection did not answer; try again', scopes: [] };
    state.authorizationRef = null;
  }

  /** Starts a child connect for the upstream and waits until it prepared the authorization, or failed. */
  async function connectThroughChild(upstream: string): Promise<void> {
    connectAttempts += 1;
    const connectId = `${state.flowId}.${connectAttempts}`;
    latestConnect.set(upstream, connectId);
    state.authorizationRef = null;
    const ttlMs = Math.max(1_000, Date.parse(state.expiresAt) - Date.now());
    const child = await startChild<typeof upstreamConnect>('upstreamConnect', {
      workflowId: upstreamConnectWorkflowId(connectId),
      args: [{ connectId, userId: state.userId ?? '', upstream, ttlMs, consentFlowId: state.flowId }],
      staticSummary: `Connect ${upstream} in a consent flow`,
    });
    childConnects.set(connectId, child);
    await childAnswer(upstream, () => state.authorizationRef !== null);
  }

  setHandler(
    chooseIdentity,
    async ({ userId, source }) => {
      state.userId = userId;
      state.identitySource = source;
      await advanceFrom('identity');
      return state;
    },
    {
      validator: ({ userId, source }) => {
        requireStep('identity');
        if (typeof userId !== 'string' || userId.trim() === '' || userId.length > maxUserIdLength) {
          throw ApplicationFailure.nonRetryable(`userId must be 1 to ${maxUserIdLength} characters`, 'invalid_request');
        }
        if (source !== 'dev' && source !== 'oidc' && source !== 'header') {
          throw ApplicationFailure.nonRetryable('source must be dev, oidc or header', 'invalid_request');
        }
      },
    },
  );

  /** The consent this user gave the client before, looked up at the services step. */
  let remembered: { upstreams: string[]; scopes: string[] } | null | undefined;

  setHandler(
    chooseServices,
    async ({ upstreams, remembered: found }) => {
      state.chosenUpstreams = [...new Set(upstreams)];
      const entered = advanceFrom('services');
      if (uses(rememberConsentPatch) && state.userId) {
        const userId = state.userId;
        // A current flow takes the route's lookup (a consent of another user counts as none).
        remembered = current
          ? found?.userId === userId
            ? found
            : null
          : await findConsent.executeWithOptions({ startToCloseTimeout: '10 seconds', summary: 'Look up a remembered consent' }, [
              { userId, clientId: state.client.clientId },
            ]);
        // The same client asking again for no more than it was granted skips the approve screen.
        if (remembered && state.step === 'approve' && covers(remembered, { upstreams: state.chosenUpstreams, scopes: state.scopes })) {
          state.outcome = { kind: 'approved', userId, upstreams: state.chosenUpstreams, scopes: state.scopes, remembered: true };
          await Promise.all([entered, moveTo('done', 'approved')]);
          return state;
        }
      }
      await entered;
      return state;
    },
    {
      validator: ({ upstreams, remembered: found }) => {
        requireStep('services');
        if (!Array.isArray(upstreams)) throw ApplicationFailure.nonRetryable('upstreams must be a list', 'invalid_request');
        const names = (list: unknown) => Array.isArray(list) && list.every((item) => typeof item === 'string');
        if (found != null && (typeof found.userId !== 'string' || !names(found.upstreams) || !names(found.scopes))) {
          throw ApplicationFailure.nonRetryable('remembered must name a user, upstreams and scopes', 'invalid_request');
        }
        const unknown = upstreams.filter((name) => !state.availableUpstreams.includes(name));
        if (unknown.length > 0) {
          throw ApplicationFailure.nonRetryable(`unknown upstream(s): ${unknown.join(', ')}`, 'invalid_request');
        }
      },
    },
  );

  setHandler(
    connectUpstream,
    async ({ upstream }) => {
      state.connections[upstream] = { status: 'pending', error: null, message: null, scopes: [] };
      setCurrentDetails(describe(state));
      if (uses(connectAsChildPatch)) {
        await connectThroughChild(upstream);
        setCurrentDetails(describe(state));
        return state;
      }
      // Before the patch: the flow ran the connect's activities itself. Kept while such flows can
      // still be running (test/histories/consent-flow-connect-activities.json), then deprecatePatch().
      try {
        const { authorizationRef } = await prepareUpstreamAuthorization.executeWithOptions(
          { startToCloseTimeout: '30 seconds', retry: { maximumAttempts: 4 }, summary: `Prepare authorization at ${upstream}` },
          [{ flowId: state.flowId, upstream, userId: state.userId ?? '' }],
        );
        state.authorizationRef = authorizationRef;
      } catch (error) {
        const failure = failureOf(error);
        state.connections[upstream] = { status: 'failed', error: failure.code, message: failure.message, scopes: [] };
        state.authorizationRef = null;
      }
      setCurrentDetails(describe(state));
      return state;
    },
    {
      validator: ({ upstream }) => {
        requireStep('services');
        if (!state.availableUpstreams.includes(upstream)) throw ApplicationFailure.nonRetryable(`unknown upstream: ${upstream}`, 'invalid_request');
      },
    },
  );

  setHandler(
    upstreamCallback,
    async ({ upstream, stateHash, error }) => {
      const child = childConnects.get(latestConnect.get(upstream) ?? '');
      if (child) {
        // A child that ended meanwhile (expired) cannot take it: the attempt failed.
        const relayed = await child.signal(relayCallback, { upstream, stateHash, ...(error ? { error } : {}) }).then(
          () => true,
          () => false,
        );
        if (relayed) await childAnswer(upstream);
        else state.connections[upstream] = { status: 'failed', error: 'expired', message: 'the connection attempt expired', scopes: [] };
        setCurrentDetails(describe(state));
        return state;
      }
      // A connect begun before the patch: the flow exchanges the code itself.
      if (error) {
        state.connections[upstream] = { status: 'failed', error, message: `the upstream answered ${error}`, scopes: [] };
      } else {
        try {
          const connection = await exchangeUpstreamCode.executeWithOptions(
            { startToCloseTimeout: '15 seconds', retry: { maximumAttempts: 4 }, summary: `Exchange the code from ${upstream} and store the tokens` },
            [{ flowId: state.flowId, upstream, stateHash }],
          );
          state.connections[upstream] = { status: 'connected', error: null, message: null, scopes: connection.scopes };
        } catch (caught) {
          const failure = failureOf(caught);
          state.connections[upstream] = { status: 'failed', error: failure.code, message: failure.message, scopes: [] };
        }
      }
      state.authorizationRef = null;
      setCurrentDetails(describe(state));
      return state;
    },
    {
      validator: ({ upstream }) => {
        requireStep('services');
        if (state.connections[upstream]?.status !== 'pending') {
          throw ApplicationFailure.nonRetryable(`no connect to ${upstream} is waiting for its callback`, 'invalid_transition');
        }
      },
    },
  );

  setHandler(
    decide,
    async ({ decision }) => {
      state.outcome =
        decision === 'approve'
          ? { kind: 'approved', userId: state.userId ?? '', upstreams: state.chosenUpstreams, scopes: state.scopes }
          : { kind: 'denied', userId: state.userId };
      const moved = moveTo('done', decision === 'approve' ? 'approved' : 'denied');
      if (decision === 'approve' && state.userId && uses(rememberConsentPatch) && !uses(consentSavedByRoutePatch)) {
        await saveConsent.executeWithOptions({ startToCloseTimeout: '10 seconds', summary: 'Remember the consent' }, [
          {
            userId: state.userId,
            clientId: state.client.clientId,
            // A flow decides only the upstreams it offered; consent to the others stays as it was.
            upstreams: [...(remembered?.upstreams ?? []).filter((name) => !state.availableUpstreams.includes(name)), ...state.chosenUpstreams],
            scopes: state.scopes,
            flowId: state.flowId,
            grantedAt: new Date().toISOString(),
          },
        ]);
      }
      await moved;
      return state;
    },
    {
      validator: ({ decision }) => {
        requireStep('approve');
        if (decision !== 'approve' && decision !== 'deny') {
          throw ApplicationFailure.nonRetryable('decision must be approve or deny', 'invalid_request');
        }
      },
    },
  );

  await entered;

  // The flow ends when a decision is made; the timer only wins if nobody decides in time.
  // A current flow also waits for the handler that decided to finish, so the update's completion
  // comes before the timer's cancellation in history whatever interceptors wrap the handler.
  const decided = await condition(() => state.outcome !== null && (!current || allHandlersFinished()), input.ttlMs);
  if (!decided) {
    state.outcome = { kind: 'expired', step: state.step };
    await moveTo('done', 'expired');
  }
  await condition(allHandlersFinished);
  if (current) {
    // Every move, once more: a route that sent a step but lost its write (a crash, the store down) is made whole here.
    await recordFlowChanges.executeWithOptions({ startToCloseTimeout: '10 seconds', summary: `Record the flow's ${changes.length} changes` }, [changes]);
  }
  return state.outcome ?? { kind: 'expired', step: state.step };
}

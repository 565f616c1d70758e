import { readFile } from 'node:fs/promises';
import { Client, Connection, WithStartWorkflowOperation, type ClientInterceptors, type TLSConfig } from '@temporalio/client';
import type { GatewayConfig } from '../config.js';
import { tracingInstalled } from '../tracing.js';
import { type ConsentFlowInput, consentFlowRevision, consentWorkflowId, searchAttributes } from '../../workflows/consent-flow/messages.js';
import { firstStep } from '../../workflows/consent-flow/steps.js';
import { disconnect, grantSearchAttributes, refreshNow, type RefreshNowInput, type RefreshNowResult, upstreamConnected, type UpstreamGrantInput, upstreamGrantWorkflowId } from '../../workflows/upstream-grant/messages.js';
import { markdownText } from '../../workflows/markdown.js';

/** Options shared by the client's and the worker's connection. */
export interface TemporalConnectionOptions {
  address: string;
  tls?: TLSConfig | boolean;
  apiKey?: string;
}

/** Connection options for the configured Temporal (address, TLS, API key). */
export async function temporalConnectionOptions(temporal: GatewayConfig['temporal']): Promise<TemporalConnectionOptions> {
  const options: TemporalConnectionOptions = { address: temporal.address };
  if (temporal.tls) {
    const read = async (file: string | undefined) => (file ? await readFile(file) : undefined);
    const [ca, crt, key] = await Promise.all([
      read(temporal.tls.serverRootCaCertFile),
      read(temporal.tls.clientCertFile),
      read(temporal.tls.clientKeyFile),
    ]);
    options.tls = {
      ...(temporal.tls.serverNameOverride ? { serverNameOverride: temporal.tls.serverNameOverride } : {}),
      ...(ca ? { serverRootCACertificate: ca } : {}),
      ...(crt && key ? { clientCertPair: { crt, key } } : {}),
    };
  }
  if (temporal.apiKey) {
    options.apiKey = temporal.apiKey;
    options.tls ??= true;
  }
  return options;
}

/**
 * The client interceptors a gateway Temporal client carries when tracing is on: each start, signal,
 * update and query gets a span whose context travels in the workflow's headers, so the worker's
 * spans join the trace of the request that caused them. None when tracing is off.
 */
export async function temporalClientInterceptors(): Promise<ClientInterceptors> {
  if (!tracingInstalled()) return {};
  const { OpenTelemetryWorkflowClientInterceptor } = await import('@temporalio/interceptors-opentelemetry');
  return { workflow: [new OpenTelemetryWorkflowClientInterceptor()] };
}

/** Opens a Temporal client for the configured namespace. */
export async function connectClient(temporal: GatewayConfig['temporal']): Promise<Client> {
  const connection = await Connection.connect(await temporalConnectionOptions(temporal));
  return new Client({ connection, namespace: temporal.namespace, interceptors: await temporalClientInterceptors() });
}

/** Starts the `consentFlow` workflow for one authorization request (workflow id `consent:<flowId>`). */
export async function startConsentFlow(client: Client, taskQueue: string, input: ConsentFlowInput) {
  const clientLabel = markdownText(input.client.clientName ?? input.client.clientId);
  return client.workflow.start('consentFlow', {
    taskQueue,
    workflowId: consentWorkflowId(input.flowId),
    args: [{ ...input, revision: input.revision ?? consentFlowRevision }],
    // The flow ends itself on expiry; this bound only catches a flow whose worker never returns.
    workflowExecutionTimeout: input.ttlMs + 24 * 3_600_000,
    typedSearchAttributes: [
      { key: searchAttributes.clientId, value: input.client.clientId },
      { key: searchAttributes.status, value: firstStep.status },
      { key: searchAttributes.upstreams, value: input.upstreams },
    ],
    staticSummary: `Consent for ${clientLabel}`,
    staticDetails: [
      `**Client:** ${clientLabel} (${markdownText(input.client.clientId)}, registered by ${input.client.registration})`,
      `**Redirects to:** ${input.client.redirectHost ? markdownText(input.client.redirectHost) : 'n/a'}`,
      `**Upstreams offered:** ${markdownText(input.upstreams.join(', ')) || 'none'}`,
      `**Scopes:** ${markdownText(input.scopes.join(' ')) || 'none'}`,
    ].join('\n\n'),
  });
}

function grantStartOptions(taskQueue: string, input: UpstreamGrantInput) {
  return {
    taskQueue,
    workflowId: upstreamGrantWorkflowId(input.userId, input.upstream),
    args: [input] as [UpstreamGrantInput],
    typedSearchAttributes: [
      { key: grantSearchAttributes.userId, value: input.userId },
      { key: grantSearchAttributes.upstreams, value: [input.upstream] },
      { key: grantSearchAttributes.status, value: input.status ?? 'connected' },
    ],
    staticSummary: `Grant of ${markdownText(input.userId)} at ${markdownText(input.upstream)}`,
    staticDetails: `**User:** ${markdownText(input.userId)}\n\n**Upstream:** ${markdownText(input.upstream)}`,
  };
}

/**
 * Tells the user's `upstreamGrant` workflow about a new connection (token metadata only), starting
 * it when it is not running (signal-with-start).
 */
export async function signalUpstreamConnected(client: Client, taskQueue: string, input: UpstreamGrantInput) {
  return client.workflow.signalWithStart('upstreamGrant', {
    ...grantStartOptions(taskQueue, input),
    signal: upstreamConnected,
    signalArgs: [{ version: input.version, expiresAt: input.expiresAt, refreshable: input.refreshable }],
  });
}

/** Starts the user's `upstreamGrant` workflow unless it is running already. */
export async function ensureUpstreamGrant(client: Client, taskQueue: string, input: UpstreamGrantInput) {
  return client.workflow.start('upstreamGrant', { ...grantStartOptions(taskQueue, input), workflowIdConflictPolicy: 'USE_EXISTING' });
}

/**
 * Asks the user's `upstreamGrant` workflow for a refresh (update-with-start, so a grant connected
 * before grant workflows existed gets one now). Single-flight in the workflow.
 */
export async function requestUpstreamRefresh(client: Client, taskQueue: string, input: UpstreamGrantInput, request: RefreshNowInput): Promise<RefreshNowResult> {
  const startWorkflowOperation = new WithStartWorkflowOperation('upstreamGrant', {
    ...grantStartOptions(taskQueue, input),
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
  return client.workflow.executeUpdateWithStart(refreshNow, { args: [request], startWorkflowOperation });
}

/**
 * Disconnects a user from an upstream through their `upstreamGrant` workflow (the one writer of
 * those tokens): it revokes them at the upstream (RFC 7009) when it can, deletes them, and ends.
 * Waits up to `waitMs` for that to finish, or until the request's Temporal deadline; returns
 * whether it did.
 */
export async function disconnectUpstreamGrant(client: Client, taskQueue: string, input: UpstreamGrantInput, waitMs = 15_000): Promise<boolean> {
  const handle = await client.workflow.signalWithStart('upstreamGrant', { ...grantStartOptions(taskQueue, input), signal: disconnect, signalArgs: [] });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), waitMs);
  });
  try {
    const finished = handle.result().then(
      () => true,
      (error: unknown) => {
        // The signal got through; a result that is late for this request's deadline is still coming.
        if (isTemporalUnreachable(error)) return false;
        throw error;
      },
    );
    return await Promise.race([finished, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/** `/healthz`'s Temporal check: the namespace answers within two seconds. */
export function temporalHealthCheck(client: Client, namespace: string, address: string) {
  return async (): Promise<{ ok: true; namespace: string } | { ok: false; error: string }> => {
    try {
      await client.connection.withDeadline(Date.now() + 2_000, () => client.workflowService.describeNamespace({ namespace }));
      return { ok: true, namespace };
    } catch (error) {
      return { ok: false, error: `Temporal at ${address} did not answer: ${(error as Error).message}` };
    }
  };
}

const grpcDeadlineExceeded = 4;
const grpcUnavailable = 14;

/**
 * Whether a Temporal client call failed because Temporal did not answer in time or could not be
 * reached (gRPC `DEADLINE_EXCEEDED` or `UNAVAILABLE` anywhere in its cause chain), as opposed to
 * an answer that refused the call.
 */
export function isTemporalUnreachable(error: unknown): boolean {
  for (let cause = error, depth = 0; cause && depth < 8; cause = (cause as { cause?: unknown }).cause, depth += 1) {
    if ((cause as Error).name === 'WorkflowUpdateRPCTimeoutOrCancelledError') return true;
    const code = (cause as { code?: unknown }).code;
    if (code === grpcDeadlineExceeded || code === grpcUnavailable) return true;
  }
  return false;
}

/**
 * Runs `call` with every Temporal call it makes bounded by one deadline `timeoutMs` away (the
 * connection's per-call deadline, which also ends the client's retries of an unreachable server).
 */
export function withTemporalDeadline<T>(client: Client, timeoutMs: number, call: () => Promise<T>): Promise<T> {
  return client.connection.withDeadline(Date.now() + timeoutMs, call);
}

import { readFile } from 'node:fs/promises';
import { Client, Connection, type TLSConfig } from '@temporalio/client';
import type { GatewayConfig } from './config.js';
import { consentWorkflowId, searchAttributes, type ConsentFlowInput } from '../workflows/types.js';

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

/** Opens a Temporal client for the configured namespace. */
export async function connectClient(temporal: GatewayConfig['temporal']): Promise<Client> {
  const connection = await Connection.connect(await temporalConnectionOptions(temporal));
  return new Client({ connection, namespace: temporal.namespace });
}

/** Starts the `consentFlow` workflow for one authorization request (workflow id `consent:<flowId>`). */
export async function startConsentFlow(client: Client, taskQueue: string, input: ConsentFlowInput) {
  const clientLabel = input.client.clientName ?? input.client.clientId;
  return client.workflow.start('consentFlow', {
    taskQueue,
    workflowId: consentWorkflowId(input.flowId),
    args: [input],
    // The flow ends itself on expiry; this bound only catches a flow whose worker never returns.
    workflowExecutionTimeout: input.ttlMs + 24 * 3_600_000,
    typedSearchAttributes: [
      { key: searchAttributes.clientId, value: input.client.clientId },
      { key: searchAttributes.status, value: 'identifying' },
      { key: searchAttributes.upstreams, value: input.upstreams },
    ],
    staticSummary: `Consent for ${clientLabel}`,
    staticDetails: [
      `**Client:** ${clientLabel} (\`${input.client.clientId}\`, registered by ${input.client.registration})`,
      `**Redirects to:** ${input.client.redirectHost ?? 'n/a'}`,
      `**Upstreams offered:** ${input.upstreams.join(', ') || 'none'}`,
      `**Scopes:** ${input.scopes.join(' ') || 'none'}`,
    ].join('\n\n'),
  });
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

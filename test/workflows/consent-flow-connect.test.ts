import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenCipher } from '../../server/crypto/token-cipher.js';
import { startConsentFlow } from '../../server/temporal/client.js';
import { chooseIdentity, connectUpstream, upstreamCallback } from '../../workflows/consent-flow/messages.js';
import { connectState, upstreamConnectWorkflowId } from '../../workflows/upstream-connect/messages.js';
import { openTemporalTestEnv, temporalUnavailable, type TemporalTestEnv } from '../helpers/temporal.js';

// Explicit endpoints and a static public client: preparing an authorization needs no network.
const notion = {
  name: 'notion',
  mcpUrl: 'http://127.0.0.1:9/mcp',
  auth: {
    type: 'oauth' as const,
    endpoints: { authorization: 'http://127.0.0.1:9/authorize', token: 'http://127.0.0.1:9/token' },
    client: { kind: 'static' as const, clientId: 'test', authMethod: 'none' as const },
    resource: true,
  },
  scopes: [],
};

describe.skipIf(temporalUnavailable)('consentFlow connects an upstream through a child upstreamConnect', () => {
  let env: TemporalTestEnv;
  let worker: Worker;
  let running: Promise<void>;
  const cipher = new TokenCipher(randomBytes(32));

  beforeAll(async () => {
    env = await openTemporalTestEnv();
    worker = await env.createWorker({ cipher, upstreams: [notion] });
    running = worker.run();
  });

  afterAll(async () => {
    worker?.shutdown();
    await running;
    await env?.close();
  });

  /** The `state` hash of the authorization URL the flow prepared (as the upstream would send it back). */
  async function stateHashOf(authorizationRef: string): Promise<string> {
    const sealed = await env.store.getExchangeResult(authorizationRef);
    const url = new URL(cipher.open(sealed!, authorizationRef));
    return createHash('sha256').update(url.searchParams.get('state') ?? '').digest('base64url');
  }

  it('starts one child per attempt, owned by the flow, and takes the connection from its reports', async () => {
    const flowId = randomUUID();
    const handle = await startConsentFlow(env.client, env.taskQueue, {
      flowId,
      client: { clientId: 'client-1', clientName: 'Test Client', redirectHost: 'localhost:9999', registration: 'dcr' },
      upstreams: ['notion'],
      scopes: ['mcp:tools'],
      ttlMs: 60_000,
    });
    await handle.executeUpdate(chooseIdentity, { args: [{ userId: 'alice', source: 'dev' }] });

    const prepared = await handle.executeUpdate(connectUpstream, { args: [{ upstream: 'notion' }] });
    expect(prepared.connections['notion']).toEqual({ status: 'pending', error: null, message: null, scopes: [] });
    expect(prepared.authorizationRef).toMatch(/^authorize:/);
    const child = env.client.workflow.getHandle(upstreamConnectWorkflowId(`${flowId}.1`));
    const described = await child.describe();
    expect({ type: described.type, parent: described.parentExecution?.workflowId }).toEqual({ type: 'upstreamConnect', parent: `consent:${flowId}` });
    await expect(child.query(connectState)).resolves.toMatchObject({ status: 'authorizing', userId: 'alice', upstream: 'notion' });
    // The pending authorization belongs to the consent flow, as the upstream callback route expects.
    const stateHash = await stateHashOf(prepared.authorizationRef!);
    await expect(env.store.getUpstreamAuthorization(stateHash)).resolves.toMatchObject({ flowId, userId: 'alice', upstream: 'notion' });

    const refused = await handle.executeUpdate(upstreamCallback, { args: [{ upstream: 'notion', stateHash, error: 'access_denied' }] });
    expect(refused.connections['notion']).toEqual({ status: 'failed', error: 'access_denied', message: 'the upstream answered access_denied', scopes: [] });
    expect(refused.authorizationRef).toBeNull();
    await expect(child.result()).resolves.toMatchObject({ status: 'failed', error: 'access_denied' });

    // Trying again is a new child; the flow follows the new one.
    const again = await handle.executeUpdate(connectUpstream, { args: [{ upstream: 'notion' }] });
    expect(again.connections['notion']?.status).toBe('pending');
    expect(again.authorizationRef).not.toBe(prepared.authorizationRef);
    await expect(env.client.workflow.getHandle(upstreamConnectWorkflowId(`${flowId}.2`)).query(connectState)).resolves.toMatchObject({ status: 'authorizing' });
  });
});

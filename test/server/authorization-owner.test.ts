import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { confirmedAuthorizationOwner } from '../../server/authorization-owner.js';
import { SqliteStore } from '../../server/store/sqlite-store.js';
import { upstreamConnectFlowId } from '../../workflows/upstream-connect/messages.js';

describe('confirmedAuthorizationOwner', () => {
  let dir: string;
  let store: SqliteStore;
  const now = Math.floor(Date.now() / 1000);

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-owner-'));
    store = await SqliteStore.open(path.join(dir, 'gateway.sqlite'));
  });
  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const flow = (flowId: string, userId: string | null) =>
    store.recordFlowChange({ flowId, sequence: 1, clientId: 'client-1', userId, upstreams: ['github'], status: 'choosing_services', at: new Date().toISOString() });
  const elicitation = (id: string, userId: string, upstream = 'github') =>
    store.createElicitation({ id, userId, clientId: 'client-1', upstream, createdAt: now, expiresAt: now + 600, completedAt: null });

  it('takes a connect owner id as a connect when its elicitation is there, for the same user and upstream', async () => {
    await elicitation('Zx9_elicitation-0001', 'alice');
    const pending = { flowId: upstreamConnectFlowId('Zx9_elicitation-0001'), userId: 'alice', upstream: 'github' };
    await expect(confirmedAuthorizationOwner(store, pending)).resolves.toEqual({ kind: 'connect', connectId: 'Zx9_elicitation-0001' });
  });

  it('takes a consent flow whose id begins like a connect owner id as that consent flow', async () => {
    await flow('connect-nUz0dT7xq3WkzL', 'alice');
    const pending = { flowId: 'connect-nUz0dT7xq3WkzL', userId: 'alice', upstream: 'github' };
    await expect(confirmedAuthorizationOwner(store, pending)).resolves.toEqual({ kind: 'consent', flowId: 'connect-nUz0dT7xq3WkzL' });
  });

  it('refuses an owner whose record is missing or made for someone else', async () => {
    await elicitation('Zx9_elicitation-0002', 'bob');
    await flow('nUz0dT7xq3WkzL_a-9QfE', 'bob');
    await expect(confirmedAuthorizationOwner(store, { flowId: upstreamConnectFlowId('Zx9_elicitation-0002'), userId: 'alice', upstream: 'github' })).resolves.toBeUndefined();
    await expect(confirmedAuthorizationOwner(store, { flowId: upstreamConnectFlowId('Zx9_elicitation-0002'), userId: 'bob', upstream: 'notion' })).resolves.toBeUndefined();
    await expect(confirmedAuthorizationOwner(store, { flowId: 'nUz0dT7xq3WkzL_a-9QfE', userId: 'alice', upstream: 'github' })).resolves.toBeUndefined();
    await expect(confirmedAuthorizationOwner(store, { flowId: 'no-such-flow-0000000', userId: 'alice', upstream: 'github' })).resolves.toBeUndefined();
  });
});

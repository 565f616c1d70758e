import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TemporarilyUnavailableError } from '../../../server/errors.js';
import { recordFlowMove, rememberedConsent } from '../../../server/routes/interaction/flow.js';
import { SqliteStore } from '../../../server/store/sqlite-store.js';
import type { FlowChange } from '../../../server/store/store.js';

const move = (sequence: number, status: FlowChange['status'], userId: string | null = 'ann'): FlowChange => ({
  flowId: 'flow-1',
  sequence,
  clientId: 'client-1',
  userId,
  upstreams: [],
  status,
  at: `2026-01-01T00:00:0${sequence}.000Z`,
});

describe('the read model as the consent routes write it', () => {
  let dir: string;
  let store: SqliteStore;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-flow-records-'));
    store = await SqliteStore.open(path.join(dir, 'gateway.sqlite'));
  });
  afterEach(async () => {
    await store.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  it('writes each move a step made, once, and leaves a final move to the flow', async () => {
    await recordFlowMove(store, move(1, 'identifying', null));
    await recordFlowMove(store, move(2, 'choosing_services'));
    await recordFlowMove(store, move(2, 'choosing_services'));
    await recordFlowMove(store, move(3, 'approved'));
    await recordFlowMove(store, undefined);
    expect((await store.listAudit({ flowId: 'flow-1' })).map((line) => line.event)).toEqual(['flow.identifying', 'flow.choosing_services']);
    expect(await store.getFlow('flow-1')).toMatchObject({ status: 'choosing_services', userId: 'ann' });
  });

  it("finds the consent of the flow's user for its client, and none for a flow without a user", async () => {
    await recordFlowMove(store, move(1, 'identifying', null));
    expect(await rememberedConsent(store, 'flow-1')).toBeNull();
    await recordFlowMove(store, move(2, 'choosing_services'));
    expect(await rememberedConsent(store, 'flow-1')).toBeNull();
    await store.saveConsent({ userId: 'ann', clientId: 'client-1', upstreams: ['github'], scopes: ['mcp:tools'], flowId: 'earlier', grantedAt: '2026-01-01T00:00:00.000Z' });
    await store.saveConsent({ userId: 'bob', clientId: 'client-1', upstreams: ['notion'], scopes: ['mcp:tools'], flowId: 'other', grantedAt: '2026-01-01T00:00:00.000Z' });
    expect(await rememberedConsent(store, 'flow-1')).toEqual({ userId: 'ann', upstreams: ['github'], scopes: ['mcp:tools'] });
    expect(await rememberedConsent(store, 'no-such-flow')).toBeNull();
  });

  it('answers 503, to be tried again, while the store cannot be reached', async () => {
    await store.close();
    const write = await recordFlowMove(store, move(2, 'choosing_services')).catch((error: unknown) => error);
    expect(write).toBeInstanceOf(TemporarilyUnavailableError);
    expect((write as TemporarilyUnavailableError).status).toBe(503);
    await expect(rememberedConsent(store, 'flow-1')).rejects.toBeInstanceOf(TemporarilyUnavailableError);
  });
});

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFlowActivities } from '../../activities/flow-records.js';
import { withAudit } from '../../activities/audit.js';
import { createAuditLog } from '../../server/audit/audit-log.js';
import { SqliteStore } from '../../server/store/sqlite-store.js';
import type { FlowChange, UpstreamTokenStatus } from '../../server/store/store.js';

describe('audited activities', () => {
  let dir: string;
  let store: SqliteStore;
  const lines: string[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-audit-activities-'));
    store = await SqliteStore.open(path.join(dir, 'gateway.sqlite'));
    lines.length = 0;
  });
  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  function activities(refresh: (input: { userId: string; upstream: string; version: number; key: string }) => Promise<{ version: number }>) {
    return withAudit(
      {
        ...createFlowActivities({ store }),
        refreshUpstreamToken: refresh,
        setUpstreamTokenStatus: async (_input: { userId: string; upstream: string; status: UpstreamTokenStatus }) => {},
      },
      { audit: createAuditLog({ store, log: { warn() {} }, stdout: (line) => lines.push(line) }) },
    );
  }

  const change = (status: FlowChange['status'], sequence: number): FlowChange => ({ flowId: 'f1', sequence, clientId: 'c1', userId: 'ann', upstreams: ['github'], status, at: '2026-01-01T00:00:00.000Z' });

  it('writes one consent.expired entry for an expired flow, and none for other steps', async () => {
    const audited = activities(async () => ({ version: 2 }));
    await audited.recordFlowChange(change('identifying', 1));
    await audited.recordFlowChange(change('expired', 2));
    await audited.recordFlowChange(change('expired', 2));
    const entries = await store.queryAudit({ limit: 10 });
    expect(entries.map(({ id: _id, ...entry }) => entry)).toEqual([
      { kind: 'consent.expired', at: '2026-01-01T00:00:00.000Z', userId: 'ann', clientId: 'c1', upstream: null, outcome: 'expired', flowId: 'consent:f1', sourceIp: null, actor: 'gateway' },
    ]);
    expect(lines.map((line) => JSON.parse(line) as { type: string; kind: string })).toMatchObject([{ type: 'audit', kind: 'consent.expired' }]);
  });

  it('writes the same one consent.expired entry when an ended flow records all its changes at once', async () => {
    const audited = activities(async () => ({ version: 2 }));
    await audited.recordFlowChange(change('identifying', 1));
    expect(await audited.recordFlowChanges([change('identifying', 1), change('choosing_services', 2), change('expired', 3)])).toEqual({ applied: 2 });
    expect(await audited.recordFlowChanges([change('identifying', 1), change('choosing_services', 2), change('expired', 3)])).toEqual({ applied: 0 });
    expect((await store.listAudit({ flowId: 'f1' })).map((line) => line.event)).toEqual(['flow.identifying', 'flow.choosing_services', 'flow.expired']);
    expect((await store.getFlow('f1'))?.status).toBe('expired');
    expect((await store.queryAudit({ limit: 10 })).map((entry) => entry.kind)).toEqual(['consent.expired']);
  });

  it('writes one upstream.refresh_failed entry for a refused refresh, however often it is retried', async () => {
    const audited = activities(async () => {
      throw ApplicationFailure.nonRetryable('github refused: invalid_grant', 'invalid_grant');
    });
    const input = { userId: 'ann', upstream: 'github', version: 3, key: 'refresh:grant:ann:github:3' };
    await expect(audited.refreshUpstreamToken(input)).rejects.toThrow('invalid_grant');
    await expect(audited.refreshUpstreamToken(input)).rejects.toThrow('invalid_grant');
    const entries = await store.queryAudit({ limit: 10 });
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ kind: 'upstream.refresh_failed', userId: 'ann', upstream: 'github', outcome: 'invalid_grant', actor: 'gateway' });
  });

  it('writes nothing for a failed attempt that will be retried', async () => {
    const audited = activities(async () => {
      throw new Error('connect ECONNREFUSED');
    });
    await expect(audited.refreshUpstreamToken({ userId: 'ann', upstream: 'github', version: 3, key: 'k' })).rejects.toThrow('ECONNREFUSED');
    expect(await store.queryAudit({ limit: 10 })).toEqual([]);
  });

  it('writes upstream.needs_reconnect only when a connection is marked so', async () => {
    const audited = activities(async () => ({ version: 2 }));
    await audited.setUpstreamTokenStatus({ userId: 'ann', upstream: 'github', status: 'connected' });
    await audited.setUpstreamTokenStatus({ userId: 'ann', upstream: 'github', status: 'needs_reconnect' });
    const entries = await store.queryAudit({ limit: 10 });
    expect(entries.map((entry) => [entry.kind, entry.userId, entry.upstream, entry.outcome])).toEqual([['upstream.needs_reconnect', 'ann', 'github', 'needs_reconnect']]);
  });
});

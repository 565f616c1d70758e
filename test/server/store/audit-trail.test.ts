import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { StoreConfig } from '../../../server/config.js';
import { openStore } from '../../../server/store/open-store.js';
import type { GatewayStore, NewAuditEntry } from '../../../server/store/store.js';
import { createTestDatabase, postgresUnavailable } from '../../helpers/postgres.js';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

const backends: { name: string; skip: string; fresh(): Promise<StoreConfig> }[] = [
  {
    name: 'sqlite',
    skip: '',
    async fresh() {
      const dir = await mkdtemp(path.join(tmpdir(), 'cg-audit-'));
      dirs.push(dir);
      const file = path.join(dir, 'gateway.sqlite');
      return { backend: 'sqlite', url: `sqlite:${file}`, path: file };
    },
  },
  {
    name: 'postgres',
    skip: postgresUnavailable,
    async fresh() {
      return { backend: 'postgres', url: await createTestDatabase(), poolSize: 2 };
    },
  },
];

const entry = (overrides: Partial<NewAuditEntry> = {}): NewAuditEntry => ({
  kind: 'consent.approved',
  at: '2026-01-01T00:00:00.000Z',
  userId: 'alice',
  clientId: 'client-1',
  upstream: null,
  outcome: 'ok',
  flowId: 'flow-1',
  sourceIp: '127.0.0.1',
  actor: null,
  ...overrides,
});

describe.each(backends)('the audit trail on $name', (backend) => {
  let store: GatewayStore | undefined;
  afterEach(async () => {
    await store?.close();
    store = undefined;
  });

  async function open(): Promise<GatewayStore> {
    store = await openStore(await backend.fresh());
    return store;
  }

  it.skipIf(backend.skip)('returns what was appended, newest first, with every field', async () => {
    const trail = await open();
    expect(await trail.appendAudit(entry())).toBe(true);
    expect(await trail.appendAudit(entry({ kind: 'upstream.connected', upstream: 'notion', clientId: null, flowId: 'grant:alice:notion', sourceIp: null, actor: 'gateway', at: '2026-01-01T00:00:01.000Z' }))).toBe(true);
    const entries = await trail.queryAudit({ limit: 10 });
    expect(entries.map(({ id: _id, ...rest }) => rest)).toEqual([
      entry({ kind: 'upstream.connected', upstream: 'notion', clientId: null, flowId: 'grant:alice:notion', sourceIp: null, actor: 'gateway', at: '2026-01-01T00:00:01.000Z' }),
      entry(),
    ]);
    expect(entries[0]!.id).toBeGreaterThan(entries[1]!.id);
  });

  it.skipIf(backend.skip)('writes an entry once per dedupe key', async () => {
    const trail = await open();
    expect(await trail.appendAudit(entry(), 'flow-outcome:flow-1')).toBe(true);
    expect(await trail.appendAudit(entry({ kind: 'consent.expired' }), 'flow-outcome:flow-1')).toBe(false);
    expect((await trail.queryAudit({ limit: 10 })).map((e) => e.kind)).toEqual(['consent.approved']);
  });

  it.skipIf(backend.skip)('filters by user, client, upstream, kind and time, and pages with a cursor', async () => {
    const trail = await open();
    await trail.appendAudit(entry({ at: '2026-01-01T00:00:00.000Z' }));
    await trail.appendAudit(entry({ at: '2026-01-02T00:00:00.000Z', userId: 'bob' }));
    await trail.appendAudit(entry({ at: '2026-01-03T00:00:00.000Z', kind: 'upstream.disconnected', upstream: 'github', clientId: null }));
    await trail.appendAudit(entry({ at: '2026-01-04T00:00:00.000Z', clientId: 'client-2' }));
    const users = (query: Parameters<GatewayStore['queryAudit']>[0]) => trail.queryAudit(query).then((found) => found.map((e) => `${e.userId}@${e.at.slice(8, 10)}`));
    expect(await users({ limit: 10, userId: 'bob' })).toEqual(['bob@02']);
    expect(await users({ limit: 10, clientId: 'client-2' })).toEqual(['alice@04']);
    expect(await users({ limit: 10, upstream: 'github' })).toEqual(['alice@03']);
    expect(await users({ limit: 10, kind: 'upstream.disconnected' })).toEqual(['alice@03']);
    expect(await users({ limit: 10, since: '2026-01-02T00:00:00.000Z', until: '2026-01-04T00:00:00.000Z' })).toEqual(['alice@03', 'bob@02']);
    const first = await trail.queryAudit({ limit: 2 });
    expect(first.map((e) => e.at.slice(8, 10))).toEqual(['04', '03']);
    const second = await trail.queryAudit({ limit: 2, before: first[1]!.id });
    expect(second.map((e) => e.at.slice(8, 10))).toEqual(['02', '01']);
    expect(await trail.queryAudit({ limit: 2, before: second[1]!.id })).toEqual([]);
  });
});

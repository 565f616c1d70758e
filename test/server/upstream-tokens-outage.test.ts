import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UpstreamConfig } from '../../server/config.js';
import { TokenCipher } from '../../server/crypto/token-cipher.js';
import { createLogger } from '../../server/log.js';
import { SqliteStore } from '../../server/store/sqlite-store.js';
import { TemporalUnavailableRpcError, upstreamTokens } from '../../server/upstream-tokens.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { freePort } from '../helpers/free-port.js';
import { connectNotionAccount, notionUpstreamConfig } from '../helpers/upstream-account.js';

/**
 * A forwarded call whose upstream token must be refreshed first asks the user's grant workflow;
 * with Temporal unreachable that ask is bounded by the request deadline and answered with a
 * JSON-RPC error the client may retry, instead of waiting out the Temporal client's retries.
 */
describe('upstream tokens while Temporal is unreachable', () => {
  let notion: FakeUpstream;
  let store: SqliteStore;
  let dir: string;
  let upstream: UpstreamConfig;
  let connection: Connection;
  const cipher = new TokenCipher(randomBytes(32));

  beforeAll(async () => {
    notion = await startFakeUpstream({ preset: 'notion', accessTokenTtlSeconds: 3600 });
    dir = await mkdtemp(path.join(tmpdir(), 'cg-tokens-outage-'));
    store = await SqliteStore.open(path.join(dir, 'gateway.sqlite'));
    upstream = notionUpstreamConfig(notion);
    // Nothing listens there: every call to it fails as "unavailable" and is retried by the client.
    connection = Connection.lazy({ address: `127.0.0.1:${await freePort()}` });
  });

  afterAll(async () => {
    await connection?.close();
    await store?.close();
    await notion?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers a call whose expired token needs a refresh with a JSON-RPC error within the request deadline', async () => {
    await connectNotionAccount({ store, cipher, notion, upstream, redirectUri: 'http://127.0.0.1:9/oauth/upstream/callback', userId: 'olga', login: 'notion-olga' });
    const stored = (await store.getUpstreamTokens('olga', 'notion'))!;
    await store.saveUpstreamTokens({ ...stored, expiresAt: Math.floor(Date.now() / 1000) - 60 });
    const tokens = upstreamTokens({
      store,
      cipher,
      upstreams: [upstream],
      temporal: { client: new Client({ connection }), taskQueue: 'unused', log: createLogger('error'), requestTimeoutMs: 500 },
    });
    const target = { name: 'notion', displayName: 'Notion', url: upstream.mcpUrl };
    const caller = { userId: 'olga', clientId: 'client-1', upstreams: [target] };

    const error = await tokens.headers(caller, target).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(TemporalUnavailableRpcError);
    expect((error as TemporalUnavailableRpcError).code).toBe(-32603);
    expect((error as Error).message).toContain('briefly unavailable');
    // Nothing was refreshed or lost: the stored tokens are as they were.
    expect((await store.getUpstreamTokens('olga', 'notion'))?.version).toBe(stored.version);
  }, 30_000);
});

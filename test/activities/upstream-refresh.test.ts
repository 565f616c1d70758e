import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import type { UpstreamConfig } from '../../server/config.js';
import { TokenCipher } from '../../server/crypto/token-cipher.js';
import { SqliteStore } from '../../server/store/sqlite-store.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { connectNotionAccount, notionUpstreamConfig } from '../helpers/upstream-account.js';

const redirectUri = 'http://127.0.0.1:9/oauth/upstream/callback';

describe('refreshUpstreamToken', () => {
  let notion: FakeUpstream;
  let store: SqliteStore;
  let dir: string;
  let upstream: UpstreamConfig;
  const cipher = new TokenCipher(randomBytes(32));

  beforeAll(async () => {
    notion = await startFakeUpstream({ preset: 'notion', accessTokenTtlSeconds: 3600 });
    dir = await mkdtemp(path.join(tmpdir(), 'cg-refresh-'));
    store = await SqliteStore.open(path.join(dir, 'gateway.sqlite'));
    upstream = notionUpstreamConfig(notion);
  });

  afterAll(async () => {
    await store?.close();
    await notion?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const open = (sealed: string, kind: 'access' | 'refresh', user: string) => cipher.open(sealed, `upstream_tokens:${user}:notion:${kind}`);

  it('stores the rotated tokens sealed with the next version and returns metadata only', async () => {
    await connectNotionAccount({ store, cipher, notion, upstream, redirectUri, userId: 'gus', login: 'notion-gus' });
    const before = (await store.getUpstreamTokens('gus', 'notion'))!;
    const activities = createActivities({ store, cipher, upstreams: [upstream], redirectUri });
    notion.resetCounters();
    const result = await activities.refreshUpstreamToken({ userId: 'gus', upstream: 'notion', version: before.version, key: 'refresh:test-gus:1' });
    const after = (await store.getUpstreamTokens('gus', 'notion'))!;
    expect(result).toEqual({ status: 'connected', version: before.version + 1, expiresAt: after.expiresAt, refreshable: true });
    expect(notion.counters.refreshGrants).toBe(1);
    expect(open(after.accessToken, 'access', 'gus')).not.toBe(open(before.accessToken, 'access', 'gus'));
    expect(open(after.refreshToken!, 'refresh', 'gus')).not.toBe(open(before.refreshToken!, 'refresh', 'gus'));
    expect(after.connectedAt).toBe(before.connectedAt);
  });

  it('sends a proof of the grant\'s DPoP key, and drops the key when the authorization server answers with a Bearer token', async () => {
    const unbinding = await startFakeUpstream({ preset: 'notion', accessTokenTtlSeconds: 3600, dpop: false });
    try {
      const config = notionUpstreamConfig(unbinding);
      await connectNotionAccount({ store, cipher, notion: unbinding, upstream: config, redirectUri, userId: 'joy', login: 'notion-joy' });
      const connected = (await store.getUpstreamTokens('joy', 'notion'))!;
      expect(connected.dpopKey).toBeUndefined();
      // As if the server had bound this grant before: a key stored with it.
      const keyPair = await oauth.generateKeyPair('ES256', { extractable: true });
      const jwk = await crypto.subtle.exportKey('jwk', keyPair.privateKey);
      await store.saveUpstreamTokens({ ...connected, tokenType: 'DPoP', dpopKey: cipher.seal(JSON.stringify({ alg: 'ES256', jwk }), 'upstream_tokens:joy:notion:dpop') });
      const activities = createActivities({ store, cipher, upstreams: [config], redirectUri });
      await activities.refreshUpstreamToken({ userId: 'joy', upstream: 'notion', version: connected.version, key: 'refresh:test-joy:1' });
      expect(unbinding.counters.dpopRefreshGrants).toBe(1);
      const after = (await store.getUpstreamTokens('joy', 'notion'))!;
      expect(after.tokenType.toLowerCase()).toBe('bearer');
      expect(after.dpopKey).toBeUndefined();
    } finally {
      await unbinding.close();
    }
  });

  it('continues a retried attempt from the stored response instead of spending the rotated refresh token again', async () => {
    await connectNotionAccount({ store, cipher, notion, upstream, redirectUri, userId: 'hal', login: 'notion-hal' });
    const before = (await store.getUpstreamTokens('hal', 'notion'))!;
    const activities = createActivities({ store, cipher, upstreams: [upstream], redirectUri });
    notion.resetCounters();
    const key = 'refresh:test-hal:1';
    await activities.refreshUpstreamToken({ userId: 'hal', upstream: 'notion', version: before.version, key });
    const first = (await store.getUpstreamTokens('hal', 'notion'))!;
    // As if the first attempt died after the upstream answered but before the tokens were saved.
    await store.saveUpstreamTokens(before);
    const retried = await activities.refreshUpstreamToken({ userId: 'hal', upstream: 'notion', version: before.version, key });
    const second = (await store.getUpstreamTokens('hal', 'notion'))!;
    expect(notion.counters.refreshGrants).toBe(1);
    expect(notion.counters.failedTokenRequests).toBe(0);
    expect(retried.version).toBe(before.version + 1);
    expect(open(second.accessToken, 'access', 'hal')).toBe(open(first.accessToken, 'access', 'hal'));
    expect(open(second.refreshToken!, 'refresh', 'hal')).toBe(open(first.refreshToken!, 'refresh', 'hal'));
  });

  it('fails with a non-retryable invalid_grant once the user revoked the grant at the upstream', async () => {
    await connectNotionAccount({ store, cipher, notion, upstream, redirectUri, userId: 'ivy', login: 'notion-ivy' });
    const before = (await store.getUpstreamTokens('ivy', 'notion'))!;
    await notion.revokeAllTokensFor('notion-ivy');
    const activities = createActivities({ store, cipher, upstreams: [upstream], redirectUri });
    await expect(activities.refreshUpstreamToken({ userId: 'ivy', upstream: 'notion', version: before.version, key: 'refresh:test-ivy:1' })).rejects.toMatchObject({
      type: 'invalid_grant',
      nonRetryable: true,
    });
    expect(await store.getUpstreamTokens('ivy', 'notion')).toEqual(before);
  });
});

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import { TokenCipher } from '../../server/crypto/token-cipher.js';
import { SqliteStore } from '../../server/store/sqlite-store.js';
import { startFakeUpstream, type FakeUpstream, type FakeUpstreamOptions } from '../helpers/fake-upstream.js';
import { connectNotionAccount, notionUpstreamConfig } from '../helpers/upstream-account.js';

const redirectUri = 'http://127.0.0.1:9/oauth/upstream/callback';
const cipher = new TokenCipher(randomBytes(32));

describe('issuer checks at an upstream authorization server', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function setup(misbehaviour: Omit<FakeUpstreamOptions, 'preset'>): Promise<{ notion: FakeUpstream; store: SqliteStore; connect(userId: string): Promise<void> }> {
    const notion = await startFakeUpstream({ preset: 'notion', ...misbehaviour });
    cleanups.push(() => notion.close());
    const dir = await mkdtemp(path.join(tmpdir(), 'cg-issuer-'));
    const store = await SqliteStore.open(path.join(dir, 'gateway.sqlite'));
    cleanups.push(async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    });
    const upstream = notionUpstreamConfig(notion);
    return { notion, store, connect: (userId) => connectNotionAccount({ store, cipher, notion, upstream, redirectUri, userId, login: `notion-${userId}` }) };
  }

  it('connects when the authorization response carries the issuer the metadata names', async () => {
    let seen: string | null = null;
    const { notion, store, connect } = await setup({ rewriteAuthorizationResponse: (parameters) => void (seen = parameters.get('iss')) });
    await connect('ann');
    expect(seen).toBe(notion.issuer);
    expect((await store.getUpstreamTokens('ann', 'notion'))?.status).toBe('connected');
  });

  it('refuses an authorization response whose iss names another issuer, before any code exchange (RFC 9207)', async () => {
    const { notion, store, connect } = await setup({ rewriteAuthorizationResponse: (parameters) => parameters.set('iss', 'https://attacker.example') });
    await expect(connect('bea')).rejects.toMatchObject({ type: 'invalid_response', nonRetryable: true, message: expect.stringContaining('"iss"') });
    expect(notion.counters.codeExchanges).toBe(0);
    expect(notion.counters.failedTokenRequests).toBe(0);
    expect(await store.getUpstreamTokens('bea', 'notion')).toBeUndefined();
  });

  it('refuses an authorization response without iss when the metadata advertises authorization_response_iss_parameter_supported', async () => {
    const { notion, store, connect } = await setup({ rewriteAuthorizationResponse: (parameters) => parameters.delete('iss') });
    await expect(connect('cat')).rejects.toMatchObject({ type: 'invalid_response', nonRetryable: true, message: expect.stringContaining('"iss"') });
    expect(notion.counters.codeExchanges).toBe(0);
    expect(await store.getUpstreamTokens('cat', 'notion')).toBeUndefined();
  });

  it('accepts an authorization response without iss from a server that does not advertise it', async () => {
    const { store, connect } = await setup({
      rewriteMetadata: ({ authorization_response_iss_parameter_supported: _advertised, ...metadata }) => metadata,
      rewriteAuthorizationResponse: (parameters) => parameters.delete('iss'),
    });
    await connect('dan');
    expect((await store.getUpstreamTokens('dan', 'notion'))?.status).toBe('connected');
  });

  it('still refuses a wrong iss from a server that does not advertise it', async () => {
    const { store, connect } = await setup({
      rewriteMetadata: ({ authorization_response_iss_parameter_supported: _advertised, ...metadata }) => metadata,
      rewriteAuthorizationResponse: (parameters) => parameters.set('iss', 'https://attacker.example'),
    });
    await expect(connect('eve')).rejects.toMatchObject({ type: 'invalid_response', nonRetryable: true });
    expect(await store.getUpstreamTokens('eve', 'notion')).toBeUndefined();
  });

  it('refuses authorization server metadata whose issuer is not the URL it was fetched from (RFC 8414 §3.3)', async () => {
    const { notion, store } = await setup({ rewriteMetadata: (metadata) => ({ ...metadata, issuer: 'https://attacker.example' }) });
    const upstream = notionUpstreamConfig(notion);
    const activities = createActivities({ store, cipher, upstreams: [upstream], redirectUri });
    await expect(activities.prepareUpstreamAuthorization({ flowId: 'flow-fay', upstream: 'notion', userId: 'fay' })).rejects.toMatchObject({
      type: 'invalid_response',
      nonRetryable: true,
      message: expect.stringContaining('"issuer"'),
    });
    expect(notion.counters.registrations).toBe(0);
    expect(await store.getUpstreamClient('notion')).toBeUndefined();
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import { loadCipher } from '../../server/crypto/keys.js';
import type { TokenCipher } from '../../server/crypto/token-cipher.js';
import { upstreamRedirectUri } from '../../server/upstream-config.js';
import { grantState, upstreamGrantWorkflowId } from '../../workflows/upstream-grant/messages.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { obtainGatewayToken } from '../helpers/gateway-token.js';
import { temporalUnavailable } from '../helpers/temporal.js';
import { connectNotionAccount, notionUpstreamConfig } from '../helpers/upstream-account.js';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

describe.skipIf(Boolean(temporalUnavailable))('an upstream that moves to another authorization server (SEP-2352)', () => {
  let before: FakeUpstream;
  let after: FakeUpstream;
  let gateway: TestGateway;
  let cipher: TokenCipher;

  beforeAll(async () => {
    before = await startFakeUpstream({ preset: 'notion', accessTokenTtlSeconds: 3600 });
    after = await startFakeUpstream({ preset: 'notion', autoLogin: 'notion-mia' });
    gateway = await startTestGateway((config) => {
      config.upstreams = [notionUpstreamConfig(before)];
    });
    cipher = await loadCipher(gateway.config, quiet);
  });

  afterAll(async () => {
    await gateway?.close();
    await before?.close();
    await after?.close();
  });

  const initialize = (token: string) =>
    fetch(`${gateway.url}/mcp/notion`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
    });

  it('stores the issuer with the grant, sends no token to the new server, and asks the user to reconnect there', async () => {
    const upstream = gateway.config.upstreams[0]!;
    await connectNotionAccount({ store: gateway.store, cipher, notion: before, upstream, redirectUri: upstreamRedirectUri(gateway.config), userId: 'mia', login: 'notion-mia' });
    expect((await gateway.store.getUpstreamTokens('mia', 'notion'))?.issuer).toBe(before.issuer);
    const { accessToken } = await obtainGatewayToken(gateway.url, { user: 'mia', resource: `${gateway.url}/mcp/notion` });
    const working = await initialize(accessToken);
    expect(working.status).toBe(200);
    await working.body?.cancel();

    before.migrateTo(after.issuer);
    before.resetCounters();
    const refused = await initialize(accessToken);
    const answer = (await refused.json()) as { id: number; error: { code: number; data: { elicitations: { mode: string; url: string }[] } } };
    expect(answer.id).toBe(1);
    expect(answer.error.code).toBe(-32042);
    expect(answer.error.data.elicitations[0]).toMatchObject({ mode: 'url', url: expect.stringContaining(`${gateway.url}/connect?elicitationId=`) });

    // Neither server saw the refresh token: the old one is no longer named, the new one never issued it.
    for (const server of [before, after]) {
      expect(server.counters).toMatchObject({ refreshGrants: 0, failedTokenRequests: 0, revocations: 0, codeExchanges: 0 });
    }
    expect((await gateway.store.getUpstreamTokens('mia', 'notion'))?.status).toBe('needs_reconnect');
    const grant = await gateway.temporal.workflow.getHandle(upstreamGrantWorkflowId('mia', 'notion')).query(grantState);
    expect(grant).toMatchObject({ status: 'needs_reconnect', reason: 'authorization_server_changed' });

    // The reconnect goes to the server the upstream names now.
    const activities = createActivities({ store: gateway.store, cipher, upstreams: gateway.config.upstreams, redirectUri: upstreamRedirectUri(gateway.config) });
    const { authorizationRef } = await activities.prepareUpstreamAuthorization({ flowId: 'reconnect-mia', upstream: 'notion', userId: 'mia' });
    const authorizationUrl = new URL(cipher.open((await gateway.store.getExchangeResult(authorizationRef))!, authorizationRef));
    expect(authorizationUrl.origin + authorizationUrl.pathname).toBe(after.authorizationEndpoint);
    expect(after.counters.registrations).toBe(1);
  });

  it('refuses a refresh and a revocation at the new server for tokens the old one issued', async () => {
    const upstream = notionUpstreamConfig(before, 'moved');
    const store = gateway.store;
    before.migrateTo(before.issuer);
    await connectNotionAccount({ store, cipher, notion: before, upstream, redirectUri: upstreamRedirectUri(gateway.config), userId: 'ned', login: 'notion-ned' });
    const tokens = (await store.getUpstreamTokens('ned', 'moved'))!;
    before.migrateTo(after.issuer);
    after.resetCounters();
    before.resetCounters();
    const activities = createActivities({ store, cipher, upstreams: [upstream], redirectUri: upstreamRedirectUri(gateway.config) });
    await expect(activities.refreshUpstreamToken({ userId: 'ned', upstream: 'moved', version: tokens.version, key: 'refresh:ned:moved' })).rejects.toMatchObject({
      type: 'authorization_server_changed',
      nonRetryable: true,
    });
    expect(await activities.revokeUpstreamTokens({ userId: 'ned', upstream: 'moved' })).toEqual({ revoked: false });
    expect(after.counters).toMatchObject({ refreshGrants: 0, failedTokenRequests: 0, revocations: 0 });
    expect(before.counters).toMatchObject({ refreshGrants: 0, failedTokenRequests: 0, revocations: 0 });
    expect(await store.getUpstreamTokens('ned', 'moved')).toEqual(tokens);
  });
});

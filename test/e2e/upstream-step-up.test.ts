import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import type { UpstreamConfig } from '../../server/config.js';
import { loadCipher } from '../../server/crypto/keys.js';
import type { TokenCipher } from '../../server/crypto/token-cipher.js';
import { ensureUpstreamGrant, signalUpstreamConnected } from '../../server/temporal/client.js';
import { requireScopes, upstreamGrantWorkflowId } from '../../workflows/upstream-grant/messages.js';
import { upstreamRedirectUri } from '../../server/upstream-config.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { obtainGatewayToken } from '../helpers/gateway-token.js';
import { temporalUnavailable } from '../helpers/temporal.js';
import { connectNotionAccount, notionUpstreamConfig } from '../helpers/upstream-account.js';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const modern = '2026-07-28';

interface Elicitation {
  mode: string;
  elicitationId: string;
  url: string;
  message: string;
}

describe.skipIf(Boolean(temporalUnavailable))('step-up at an upstream: insufficient_scope (MCP 2026-07-28 Authorization, SEP-2350)', () => {
  let notion: FakeUpstream;
  let gateway: TestGateway;
  let cipher: TokenCipher;
  let upstream: UpstreamConfig;

  beforeAll(async () => {
    notion = await startFakeUpstream({ preset: 'notion', scopes: ['mcp:tools', 'mcp:write'], toolScopes: { echo: ['mcp:write'] }, accessTokenTtlSeconds: 3600 });
    gateway = await startTestGateway((config) => {
      config.upstreams = [{ ...notionUpstreamConfig(notion), scopes: ['mcp:tools'] }];
    });
    upstream = gateway.config.upstreams[0]!;
    cipher = await loadCipher(gateway.config, quiet);
  });

  afterAll(async () => {
    await gateway?.close();
    await notion?.close();
  });

  /** What the user's browser does with the connect link: authorize at the upstream; returns the scope asked for. */
  async function authorizeAtUpstream(userId: string): Promise<string | null> {
    const activities = createActivities({ store: gateway.store, cipher, upstreams: gateway.config.upstreams, redirectUri: upstreamRedirectUri(gateway.config) });
    const flowId = `step-up-${userId}-${Date.now()}`;
    const { authorizationRef } = await activities.prepareUpstreamAuthorization({ flowId, upstream: 'notion', userId });
    const authorizationUrl = new URL(cipher.open((await gateway.store.getExchangeResult(authorizationRef))!, authorizationRef));
    const callback = await notion.completeAuthorization(authorizationUrl, { login: `notion-${userId}` });
    const stateHash = createHash('sha256').update(callback.searchParams.get('state')!).digest('base64url');
    await gateway.store.completeUpstreamAuthorization(
      stateHash,
      {
        code: cipher.seal(callback.searchParams.get('code')!, `upstream_authorizations:${stateHash}:code`),
        callback: cipher.seal(callback.searchParams.toString(), `upstream_authorizations:${stateHash}:callback`),
      },
      Math.floor(Date.now() / 1000),
    );
    await activities.exchangeUpstreamCode({ flowId, upstream: 'notion', stateHash });
    const tokens = (await gateway.store.getUpstreamTokens(userId, 'notion'))!;
    await signalUpstreamConnected(gateway.temporal, gateway.config.temporal.taskQueue, {
      userId,
      upstream: 'notion',
      version: tokens.version,
      expiresAt: tokens.expiresAt,
      refreshable: tokens.refreshToken !== null,
    });
    return authorizationUrl.searchParams.get('scope');
  }

  async function connectedUser(userId: string, resource: string): Promise<string> {
    await connectNotionAccount({ store: gateway.store, cipher, notion, upstream, redirectUri: upstreamRedirectUri(gateway.config), userId, login: `notion-${userId}` });
    expect((await gateway.store.getUpstreamTokens(userId, 'notion'))?.scopes).toEqual(['mcp:tools']);
    return (await obtainGatewayToken(gateway.url, { user: userId, resource })).accessToken;
  }

  it('answers a 2025 call with a -32042 link that authorizes the accumulated scopes; the retried call then succeeds', async () => {
    const token = await connectedUser('ola', `${gateway.url}/mcp/notion`);
    const call = () =>
      fetch(`${gateway.url}/mcp/notion`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'echo', arguments: { text: 'written' } } }),
      });
    notion.resetCounters();
    const refused = (await (await call()).json()) as { id: number; error: { code: number; message: string; data: { elicitations: Elicitation[] } } };
    expect(refused.id).toBe(7);
    expect(refused.error.code).toBe(-32042);
    expect(refused.error.data.elicitations[0]).toMatchObject({ mode: 'url', message: 'Grant Notion more access to continue.', url: expect.stringContaining(`${gateway.url}/connect?elicitationId=`) });
    expect(notion.counters.insufficientScopeRefusals).toBe(1);
    expect((await gateway.store.getUpstreamTokens('ola', 'notion'))?.requiredScopes).toEqual(['mcp:tools', 'mcp:write']);

    expect((await authorizeAtUpstream('ola'))?.split(' ').sort()).toEqual(['mcp:tools', 'mcp:write']);
    const after = (await gateway.store.getUpstreamTokens('ola', 'notion'))!;
    expect(after.scopes.sort()).toEqual(['mcp:tools', 'mcp:write']);
    expect(after.requiredScopes).toBeUndefined();

    const retried = await call();
    const text = await retried.text();
    expect(retried.status).toBe(200);
    expect(text).toContain('"text":"written"');
    expect(notion.toolCalls).toEqual([{ accountId: 'notion-ola', tool: 'echo' }]);
  });

  it('answers a 2026-07-28 call with an input-required URL elicitation; the retry with the answer finishes the call', async () => {
    const token = await connectedUser('pia', `${gateway.url}/mcp`);
    const call = (extra: Record<string, unknown> = {}) =>
      fetch(`${gateway.url}/mcp`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': modern, 'mcp-method': 'tools/call', 'mcp-name': 'notion__echo' },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 8,
          method: 'tools/call',
          params: {
            name: 'notion__echo',
            arguments: { text: 'modern write' },
            _meta: { 'io.modelcontextprotocol/protocolVersion': modern, 'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' }, 'io.modelcontextprotocol/clientCapabilities': { elicitation: { url: {} } } },
            ...extra,
          },
        }),
      });
    const first = (await (await call()).json()) as { id: number; result: { resultType: string; inputRequests: Record<string, { method: string; params: Elicitation }>; requestState: string } };
    expect(first.id).toBe(8);
    expect(first.result.resultType).toBe('input_required');
    const [[key, request]] = Object.entries(first.result.inputRequests) as [[string, { method: string; params: Elicitation }]];
    expect(request).toMatchObject({ method: 'elicitation/create', params: { mode: 'url', url: expect.stringContaining(`${gateway.url}/connect?elicitationId=`) } });

    expect((await authorizeAtUpstream('pia'))?.split(' ').sort()).toEqual(['mcp:tools', 'mcp:write']);
    const retried = await call({ requestState: first.result.requestState, inputResponses: { [key]: { action: 'accept' } } });
    const text = await retried.text();
    expect(text).toContain('modern write');
    expect(text).not.toContain('input_required');
  });

  it('stops asking once two authorizations of the same scopes did not get them (the retry limit)', async () => {
    // Step-ups are counted per accumulated scope set and token version: two are allowed, the third is refused.
    await connectedUser('quinn', `${gateway.url}/mcp/notion`);
    const tokens = (await gateway.store.getUpstreamTokens('quinn', 'notion'))!;
    await ensureUpstreamGrant(gateway.temporal, gateway.config.temporal.taskQueue, { userId: 'quinn', upstream: 'notion', version: tokens.version, expiresAt: tokens.expiresAt, refreshable: true });
    const grant = gateway.temporal.workflow.getHandle(upstreamGrantWorkflowId('quinn', 'notion'));
    const ask = (version: number) => grant.executeUpdate(requireScopes, { args: [{ scopes: ['mcp:tools', 'mcp:admin'], seenAccessTokenVersion: version }] });
    expect((await ask(tokens.version)).outcome).toBe('authorize');
    expect((await ask(tokens.version)).outcome).toBe('authorize');
    await authorizeAtUpstream('quinn');
    const second = (await gateway.store.getUpstreamTokens('quinn', 'notion'))!;
    expect((await ask(tokens.version)).outcome).toBe('retry');
    expect((await ask(second.version)).outcome).toBe('authorize');
    await authorizeAtUpstream('quinn');
    const third = (await gateway.store.getUpstreamTokens('quinn', 'notion'))!;
    expect((await ask(third.version)).outcome).toBe('refused');
  });
});

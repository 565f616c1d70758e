import type { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCipher } from '../../server/crypto/keys.js';
import type { StoredDpopKey } from '../../server/store/sealed-labels.js';
import { disconnect, upstreamGrantWorkflowId } from '../../workflows/upstream-grant/messages.js';
import { chromiumAvailable, launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { obtainGatewayToken } from '../helpers/gateway-token.js';
import { connectMcp, startCallbackServer, TestOAuthProvider, type CallbackServer } from '../helpers/mcp-client.js';
import { storedText } from '../helpers/stored-text.js';
import { temporalUnavailable } from '../helpers/temporal.js';
import { notionUpstreamConfig } from '../helpers/upstream-account.js';

const skip = Boolean(temporalUnavailable) || (!chromiumAvailable() && process.env.CI !== 'true');
const ttlSeconds = 6;
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(skip)('DPoP toward an oauth upstream whose authorization server advertises it (RFC 9449)', () => {
  /** Binds tokens to DPoP keys and asks for nonces at its token endpoint and at its MCP endpoint; tokens live an hour. */
  let notion: FakeUpstream;
  /** The same, with tokens that expire in seconds. */
  let brief: FakeUpstream;
  let plain: FakeUpstream;
  let gateway: TestGateway;
  let browser: TestBrowser;
  let callback: CallbackServer;
  let client: McpClient;

  beforeAll(async () => {
    notion = await startFakeUpstream({ preset: 'notion', accessTokenTtlSeconds: 3600, dpopNonce: true, autoLogin: 'notion-dora' });
    brief = await startFakeUpstream({ preset: 'notion', accessTokenTtlSeconds: ttlSeconds, dpopNonce: true, autoLogin: 'brief-dora' });
    plain = await startFakeUpstream({ preset: 'notion', autoLogin: 'plain-dora' });
    callback = await startCallbackServer();
    gateway = await startTestGateway((config) => {
      const off = notionUpstreamConfig(plain, 'plain', 'Plain');
      config.upstreams = [notionUpstreamConfig(notion), notionUpstreamConfig(brief, 'brief', 'Brief'), { ...off, auth: { type: 'oauth', client: { kind: 'dynamic' }, resource: true, dpop: 'off' } }];
    });
    browser = await launchBrowser();
    const provider = new TestOAuthProvider({ redirectUrl: callback.url, clientName: 'DPoP Client' });
    const first = await connectMcp(`${gateway.url}/mcp`, provider);
    if (!('authorizationUrl' in first)) throw new Error('expected the gateway to ask for authorization');
    const page = await (await browser.newContext()).newPage();
    await page.goto(first.authorizationUrl.href);
    await page.getByLabel('User name').fill('dora');
    await page.getByRole('button', { name: 'Continue' }).click();
    for (const name of ['Notion', 'Brief', 'Plain']) {
      await page.getByRole('button', { name: `Connect ${name}` }).click();
      await page.getByRole('button', { name: `Connect ${name}` }).waitFor({ state: 'detached' });
    }
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('button', { name: 'Approve' }).click();
    const result = await callback.next();
    await first.transport.finishAuth(result.code!);
    await page.close();
    const second = await connectMcp(`${gateway.url}/mcp`, provider);
    if (!('client' in second)) throw new Error('expected a connected client');
    client = second.client;
  });

  afterAll(async () => {
    await client?.close();
    await browser?.close();
    await callback?.close();
    await gateway?.close();
    await notion?.close();
    await brief?.close();
    await plain?.close();
  });

  /** A `tools/call` of `whoami` straight at the upstream's MCP endpoint with these headers. */
  function callUpstreamDirectly(headers: Record<string, string>): Promise<Response> {
    return fetch(notion.mcpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25', ...headers },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {} } }),
    });
  }

  it('connects with a proof at the token endpoint (after its nonce challenge) and stores a DPoP-bound token with its key sealed', async () => {
    expect(notion.counters.codeExchanges).toBe(1);
    expect(notion.counters.dpopCodeExchanges).toBe(1);
    expect(notion.counters.tokenNonceChallenges).toBeGreaterThanOrEqual(1);
    const stored = (await gateway.store.getUpstreamTokens('dora', 'notion'))!;
    expect(stored.tokenType.toLowerCase()).toBe('dpop');
    expect(stored.dpopKey).toBeDefined();
    // The upstream with DPoP turned off gets no proof and issues a Bearer token.
    const unbound = (await gateway.store.getUpstreamTokens('dora', 'plain'))!;
    expect(unbound.tokenType.toLowerCase()).toBe('bearer');
    expect(unbound.dpopKey).toBeUndefined();
    expect(plain.counters.dpopCodeExchanges).toBe(0);
  });

  it('calls a tool through /mcp with a proof per request, honoring the MCP endpoint\'s nonce challenge', async () => {
    const before = (await gateway.store.getUpstreamTokens('dora', 'notion'))!;
    expect(await client.callTool({ name: 'notion__whoami', arguments: {} })).toMatchObject({ content: [{ type: 'text', text: 'notion-dora' }] });
    expect(await client.callTool({ name: 'plain__whoami', arguments: {} })).toMatchObject({ content: [{ type: 'text', text: 'plain-dora' }] });
    expect(notion.counters.resourceNonceChallenges).toBeGreaterThanOrEqual(1);
    expect(notion.counters.rejectedMcpRequests).toBe(0);
    // The nonce challenge cost no token: no refresh, no reconnect.
    const after = (await gateway.store.getUpstreamTokens('dora', 'notion'))!;
    expect(after.version).toBe(before.version);
    expect(after.status).toBe('connected');
    expect(notion.counters.refreshGrants).toBe(0);
    expect(notion.toolCalls).toEqual([{ accountId: 'notion-dora', tool: 'whoami' }]);
  });

  it('forwards through /mcp/<upstream> with a proof, and a new nonce the MCP endpoint asks for costs no token', async () => {
    const { accessToken } = await obtainGatewayToken(gateway.url, { user: 'dora', resource: `${gateway.url}/mcp/notion` });
    const before = (await gateway.store.getUpstreamTokens('dora', 'notion'))!;
    const challenges = notion.counters.resourceNonceChallenges;
    notion.rotateResourceNonce();
    const answer = await fetch(`${gateway.url}/mcp/notion`, {
      method: 'POST',
      headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'whoami', arguments: {} } }),
    });
    expect(answer.status).toBe(200);
    expect(await answer.text()).toContain('notion-dora');
    expect(notion.counters.resourceNonceChallenges).toBe(challenges + 1);
    const after = (await gateway.store.getUpstreamTokens('dora', 'notion'))!;
    expect(after.version).toBe(before.version);
    expect(notion.counters.refreshGrants).toBe(0);
    expect(notion.counters.rejectedMcpRequests).toBe(0);
  });

  it('holds a token the upstream takes only with a proof of the grant\'s key: Bearer and a bare DPoP are refused', async () => {
    const cipher = await loadCipher(gateway.config, quiet);
    const stored = (await gateway.store.getUpstreamTokens('dora', 'notion'))!;
    const accessToken = cipher.open(stored.accessToken, 'upstream_tokens:dora:notion:access');
    expect((await callUpstreamDirectly({ authorization: `Bearer ${accessToken}` })).status).toBe(401);
    expect((await callUpstreamDirectly({ authorization: `DPoP ${accessToken}` })).status).toBe(401);
  });

  it('refreshes with a proof of the same key, and the refreshed token works through /mcp', async () => {
    const before = (await gateway.store.getUpstreamTokens('dora', 'brief'))!;
    const rejected = brief.counters.rejectedMcpRequests;
    await sleep((ttlSeconds + 1) * 1000);
    expect(await client.callTool({ name: 'brief__whoami', arguments: {} })).toMatchObject({ content: [{ type: 'text', text: 'brief-dora' }] });
    const after = (await gateway.store.getUpstreamTokens('dora', 'brief'))!;
    expect(after.version).toBeGreaterThan(before.version);
    expect(brief.counters.refreshGrants).toBeGreaterThanOrEqual(1);
    expect(brief.counters.dpopRefreshGrants).toBe(brief.counters.refreshGrants);
    expect(after.tokenType.toLowerCase()).toBe('dpop');
    const cipher = await loadCipher(gateway.config, quiet);
    const keyOf = (sealed: string) => (JSON.parse(cipher.open(sealed, 'upstream_tokens:dora:brief:dpop')) as StoredDpopKey).jwk.x;
    expect(keyOf(after.dpopKey!)).toBe(keyOf(before.dpopKey!));
    expect(brief.counters.rejectedMcpRequests).toBe(rejected);
  });

  it('keeps the private key out of the store in clear and out of every workflow\'s history', async () => {
    const cipher = await loadCipher(gateway.config, quiet);
    const stored = (await gateway.store.getUpstreamTokens('dora', 'notion'))!;
    const key = JSON.parse(cipher.open(stored.dpopKey!, 'upstream_tokens:dora:notion:dpop')) as StoredDpopKey;
    expect(key.alg).toBe('ES256');
    const privatePart = key.jwk.d!;
    expect(privatePart.length).toBeGreaterThan(20);
    const disk = await storedText(gateway.config.store);
    // The dump holds the sealed key, so it is the store's content and not something empty.
    expect(disk.includes(stored.dpopKey!)).toBe(true);
    expect(disk.includes(privatePart)).toBe(false);

    const ids: string[] = [];
    for (let attempt = 0; attempt < 50 && ids.length < 3; attempt += 1) {
      ids.length = 0;
      for await (const execution of gateway.temporal.workflow.list({ query: `TaskQueue = "${gateway.config.temporal.taskQueue}"` })) ids.push(execution.workflowId);
      if (ids.length < 3) await sleep(200);
    }
    // The consent flow, its connect children and the grant workflows.
    expect(ids).toContain(upstreamGrantWorkflowId('dora', 'notion'));
    expect(ids.length).toBeGreaterThanOrEqual(3);
    for (const id of ids) {
      const history = JSON.stringify(await gateway.temporal.workflow.getHandle(id).fetchHistory());
      const decoded = history.replace(/"data":"([A-Za-z0-9+/=]+)"/g, (_m, data: string) => Buffer.from(data, 'base64').toString('utf8'));
      expect(history.includes(privatePart), `the key in the history of ${id}`).toBe(false);
      expect(decoded.includes(privatePart), `the key in the decoded history of ${id}`).toBe(false);
    }
    expect(gateway.logs.join('\n').includes(privatePart)).toBe(false);
  });

  it('deletes the key with the grant when the user disconnects', async () => {
    await gateway.temporal.workflow.getHandle(upstreamGrantWorkflowId('dora', 'notion')).signal(disconnect);
    await expect.poll(async () => gateway.store.getUpstreamTokens('dora', 'notion'), { timeout: 30_000 }).toBeUndefined();
    expect((await gateway.store.listUpstreamTokens('dora')).map((tokens) => tokens.upstream)).toEqual(['brief', 'plain']);
  });
});

import { McpError } from '@modelcontextprotocol/sdk/types.js';
import type { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricsRegistry } from '../../server/metrics.js';
import { disconnect, grantState, upstreamGrantWorkflowId } from '../../workflows/upstream-grant/messages.js';
import { chromiumAvailable, launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { connectMcp, startCallbackServer, TestOAuthProvider, type CallbackServer } from '../helpers/mcp-client.js';
import { temporalUnavailable } from '../helpers/temporal.js';
import { notionUpstreamConfig } from '../helpers/upstream-account.js';

const skip = Boolean(temporalUnavailable) || (!chromiumAvailable() && process.env.CI !== 'true');
const ttlSeconds = 6;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** MCP requests of this process waiting for a refresh of their upstream token now. */
async function refreshWaiting(): Promise<number> {
  return (await metricsRegistry.getSingleMetric('gateway_upstream_refresh_waiting')?.get())?.values[0]?.value ?? 0;
}

/** Resolves once `check` holds, checking every 20 ms (up to a minute). */
async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let tries = 0; tries < 3_000; tries += 1) {
    if (await check()) return;
    await sleep(20);
  }
  throw new Error(`still waiting for ${what}`);
}

describe.skipIf(skip)('refreshing upstream tokens behind /mcp', () => {
  let notion: FakeUpstream;
  /** Access tokens live an hour here, so nothing refreshes them ahead of time. */
  let steady: FakeUpstream;
  let gateway: TestGateway;
  let browser: TestBrowser;
  let callback: CallbackServer;

  beforeAll(async () => {
    notion = await startFakeUpstream({ preset: 'notion', accessTokenTtlSeconds: ttlSeconds });
    steady = await startFakeUpstream({ preset: 'notion', accessTokenTtlSeconds: 3600 });
    callback = await startCallbackServer();
    gateway = await startTestGateway((config) => {
      config.upstreams = [notionUpstreamConfig(notion), notionUpstreamConfig(steady, 'steady', 'Steady')];
    });
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await callback?.close();
    await gateway?.close();
    await notion?.close();
    await steady?.close();
  });

  /** Signs `user` in, connects Notion as `login` in the browser, approves, and returns a connected MCP client. */
  async function connectUser(user: string, login: string, upstream: { fake: FakeUpstream; displayName: string } = { fake: notion, displayName: 'Notion' }): Promise<McpClient> {
    upstream.fake.setAutoLogin(login);
    const provider = new TestOAuthProvider({ redirectUrl: callback.url, clientName: `Client of ${user}` });
    const first = await connectMcp(`${gateway.url}/mcp`, provider);
    if (!('authorizationUrl' in first)) throw new Error('expected the gateway to ask for authorization');
    const page = await (await browser.newContext()).newPage();
    await page.goto(first.authorizationUrl.href);
    await page.getByLabel('User name').fill(user);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('button', { name: `Connect ${upstream.displayName}` }).click();
    await page.getByRole('button', { name: `Connect ${upstream.displayName}` }).waitFor({ state: 'detached' });
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('button', { name: 'Approve' }).click();
    const result = await callback.next();
    await first.transport.finishAuth(result.code!);
    await page.close();
    const second = await connectMcp(`${gateway.url}/mcp`, provider);
    if (!('client' in second)) throw new Error('expected a connected client');
    return second.client;
  }

  it('keeps tool calls working across the access token\'s expiry through a transparent refresh', async () => {
    const client = await connectUser('rita', 'notion-rita');
    const before = (await gateway.store.getUpstreamTokens('rita', 'notion'))!;
    expect(await client.callTool({ name: 'notion__whoami', arguments: {} })).toMatchObject({ content: [{ type: 'text', text: 'notion-rita' }] });
    await sleep((ttlSeconds + 1) * 1000);
    expect(await client.callTool({ name: 'notion__whoami', arguments: {} })).toMatchObject({ content: [{ type: 'text', text: 'notion-rita' }] });
    const after = (await gateway.store.getUpstreamTokens('rita', 'notion'))!;
    expect(after.version).toBeGreaterThan(before.version);
    expect(notion.counters.refreshGrants).toBeGreaterThanOrEqual(1);
    expect(notion.counters.rejectedMcpRequests).toBe(0);
    // The callback route started the grant workflow.
    const grant = gateway.temporal.workflow.getHandle(upstreamGrantWorkflowId('rita', 'notion'));
    expect(await grant.query(grantState)).toMatchObject({ status: 'connected', userId: 'rita', upstream: 'notion' });
    await client.close();
    // Its refreshes would count at the same fake upstream as the next test's.
    await grant.signal(disconnect);
    expect(await grant.result()).toEqual({ status: 'disconnected', revoked: true });
    expect(await gateway.store.getUpstreamTokens('rita', 'notion')).toBeUndefined();
  });

  it('answers 20 concurrent tools/call with an expired token after exactly one refresh at the upstream, asked of the grant workflow once', async () => {
    const client = await connectUser('sam', 'notion-sam');
    expect(await client.callTool({ name: 'notion__whoami', arguments: {} })).toMatchObject({ content: [{ type: 'text', text: 'notion-sam' }] });
    // Without its grant workflow (a user connected before grant workflows existed) nothing refreshes ahead of time.
    const handle = gateway.temporal.workflow.getHandle(upstreamGrantWorkflowId('sam', 'notion'));
    await handle.terminate('simulating a connection made before grant workflows');
    const expired = (await gateway.store.getUpstreamTokens('sam', 'notion'))!;
    await sleep(Math.max(0, expired.expiresAt! * 1000 - Date.now()) + 1_000);
    // The refreshed token lives an hour: the grant workflow the refresh starts would otherwise
    // refresh a short-lived one again, ahead of its expiry, while this test still counts.
    notion.setAccessTokenTtl(3600);
    notion.resetCounters();

    // The refresh is held at the upstream until all 20 calls wait for it.
    const held = notion.holdTokenRequests();
    const calls = Promise.all(Array.from({ length: 20 }, (_, i) => client.callTool({ name: 'notion__echo', arguments: { text: `call ${i}` } })));
    await held.arrived;
    await until('20 requests waiting for the refresh', async () => (await refreshWaiting()) === 20);
    held.release();
    const results = await calls;
    expect(results.map((result) => result.isError ?? false)).toEqual(Array(20).fill(false));
    expect(notion.counters.refreshGrants).toBe(1);
    expect(notion.counters.failedTokenRequests).toBe(0);
    expect(notion.counters.rejectedMcpRequests).toBe(0);
    const fresh = (await gateway.store.getUpstreamTokens('sam', 'notion'))!;
    expect(fresh.version).toBe(expired.version + 1);
    expect(await refreshWaiting()).toBe(0);
    // The refresh started a new grant workflow run, which keeps refreshing from now on.
    const restarted = gateway.temporal.workflow.getHandle(upstreamGrantWorkflowId('sam', 'notion'));
    const described = await restarted.describe();
    expect(described.status.name).toBe('RUNNING');
    // One update for all 20: a workflow admits only 10 in flight, and Temporal refuses the others
    // for the client to send again a second or more later.
    const { events } = await restarted.fetchHistory();
    const updates = (events ?? []).filter((event) => event.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input?.name === 'refreshNow');
    expect(updates).toHaveLength(1);
    await client.close();
  });

  it('refreshes once when the upstream refuses the token, then marks the grant needs_reconnect and asks the user to connect again', async () => {
    const client = await connectUser('tom', 'steady-tom', { fake: steady, displayName: 'Steady' });
    expect(await client.callTool({ name: 'steady__whoami', arguments: {} })).toMatchObject({ content: [{ type: 'text', text: 'steady-tom' }] });
    expect(await steady.revokeAllTokensFor('steady-tom')).toBeGreaterThan(0);
    steady.resetCounters();
    // The user must connect again: the call answers with a URL elicitation (-32042).
    const refused = await client.callTool({ name: 'steady__whoami', arguments: {} }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(McpError);
    expect((refused as McpError).code).toBe(-32042);
    // One refused message, one refresh, no retry with the dead token.
    expect(steady.counters.rejectedMcpPosts).toBe(1);
    expect(steady.counters.failedTokenRequests).toBe(1);
    expect((await gateway.store.getUpstreamTokens('tom', 'steady'))?.status).toBe('needs_reconnect');
    const state = await gateway.temporal.workflow.getHandle(upstreamGrantWorkflowId('tom', 'steady')).query(grantState);
    expect(state).toMatchObject({ status: 'needs_reconnect', reason: 'invalid_grant' });
    expect(steady.toolCalls.filter((call) => call.accountId === 'steady-tom')).toHaveLength(0);
    await client.close();
  });
});

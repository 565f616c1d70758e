import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitationCompleteNotificationSchema, ElicitRequestSchema, McpError } from '@modelcontextprotocol/sdk/types.js';
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoUpstream, type DemoUpstream } from '../../server/demo/demo-upstream.js';
import { chromiumAvailable, launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { connectMcp, consentInBrowser, startCallbackServer, TestOAuthProvider, type CallbackServer } from '../helpers/mcp-client.js';
import { temporalUnavailable } from '../helpers/temporal.js';

const skip = Boolean(temporalUnavailable) || (!chromiumAvailable() && process.env.CI !== 'true');

describe.skipIf(skip)('URL elicitation when a call needs an upstream connection', () => {
  let notion: FakeUpstream;
  let demo: DemoUpstream;
  let gateway: TestGateway;
  let browser: TestBrowser;
  let callback: CallbackServer;
  let eve: BrowserContext;
  let eveProvider: TestOAuthProvider;

  beforeAll(async () => {
    notion = await startFakeUpstream({ preset: 'notion', autoLogin: 'notion-eve' });
    demo = await startDemoUpstream({ host: '127.0.0.1', port: 0 });
    callback = await startCallbackServer();
    gateway = await startTestGateway((config) => {
      config.upstreams = [
        { name: 'notion', displayName: 'Notion', mcpUrl: notion.mcpUrl, auth: { type: 'oauth', client: { kind: 'dynamic' }, resource: true }, scopes: [...notion.scopes] },
        { name: 'demo', displayName: 'Demo tools', mcpUrl: demo.url, auth: { type: 'none' }, scopes: [] },
      ];
    });
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await callback?.close();
    await gateway?.close();
    await notion?.close();
    await demo?.close();
  });

  it('answers -32042 with a link that reconnects only for the same user; the retried call succeeds', async () => {
    // Erin connects Notion in her consent flow and uses it. (User names differ across test files:
    // grant workflow ids are user × upstream, and every file shares the run's dev server.)
    const provider = new TestOAuthProvider({ redirectUrl: callback.url, clientName: 'Eve Desktop' });
    eveProvider = provider;
    const first = await connectMcp(`${gateway.url}/mcp`, provider);
    if (!('authorizationUrl' in first)) throw new Error('expected the gateway to ask for authorization');
    eve = await browser.newContext();
    const page = await eve.newPage();
    await page.goto(first.authorizationUrl.href);
    await page.getByLabel('User name').fill('erin');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('button', { name: 'Connect Notion' }).click();
    await page.getByRole('button', { name: 'Connect Notion' }).waitFor({ state: 'detached' });
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('button', { name: 'Approve' }).click();
    await first.transport.finishAuth((await callback.next()).code!);
    const second = await connectMcp(`${gateway.url}/mcp`, provider);
    if (!('client' in second)) throw new Error('expected a connected client');
    expect((await second.client.callTool({ name: 'notion__whoami', arguments: {} })).content).toEqual([{ type: 'text', text: 'notion-eve' }]);

    // The upstream revokes everything of hers: the next call asks her to connect again.
    await notion.revokeAllTokensFor('notion-eve');
    const refused = await second.client.callTool({ name: 'notion__whoami', arguments: {} }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(McpError);
    expect((refused as McpError).code).toBe(-32042);
    const data = (refused as McpError).data as { elicitations: { mode: string; elicitationId: string; url: string; message: string }[] };
    expect(data.elicitations).toHaveLength(1);
    const [elicitation] = data.elicitations;
    expect(elicitation).toMatchObject({ mode: 'url', message: 'Connect your Notion account to continue.' });
    expect(elicitation!.url).toBe(`${gateway.url}/connect?elicitationId=${elicitation!.elicitationId}`);
    expect((await gateway.store.getUpstreamTokens('erin', 'notion'))?.status).toBe('needs_reconnect');

    // Mallory, signed in to the gateway in her own browser, cannot use Eve's link.
    const malloryProvider = new TestOAuthProvider({ redirectUrl: callback.url, clientName: 'Mallory Desktop' });
    const mallorys = await connectMcp(`${gateway.url}/mcp`, malloryProvider);
    if (!('authorizationUrl' in mallorys)) throw new Error('expected the gateway to ask for authorization');
    const mallory = await browser.newContext();
    await consentInBrowser(await mallory.newPage(), mallorys.authorizationUrl, { user: 'mallory' });
    await callback.next();
    const phished = await mallory.newPage();
    const phishedResponse = await phished.goto(elicitation!.url);
    expect(phishedResponse?.status()).toBe(403);
    await phished.getByRole('heading', { name: 'This link is for someone else' }).waitFor();
    expect(notion.counters.codeExchanges).toBe(1);

    // A browser with no sign-in at all is told to sign in first.
    const stranger = await (await browser.newContext()).newPage();
    expect((await stranger.goto(elicitation!.url))?.status()).toBe(401);

    // Eve follows the link in her browser: the upstream signs her in and the gateway says so.
    const reconnect = await eve.newPage();
    await reconnect.goto(elicitation!.url);
    await reconnect.getByRole('heading', { name: 'Notion is connected' }).waitFor();
    expect(notion.counters.codeExchanges).toBe(2);
    expect((await gateway.store.getUpstreamTokens('erin', 'notion'))?.status).toBe('connected');
    expect((await gateway.store.getElicitation(elicitation!.elicitationId))?.completedAt).not.toBeNull();

    // The retried call succeeds.
    expect((await second.client.callTool({ name: 'notion__whoami', arguments: {} })).content).toEqual([{ type: 'text', text: 'notion-eve' }]);
    await second.client.close();
  });

  it('sends elicitation/create (mode url) to a client that declared it, and finishes the call once the user connected', async () => {
    await notion.revokeAllTokensFor('notion-eve');
    const exchangesBefore = notion.counters.codeExchanges;
    const client = new Client({ name: 'elicitation-capable', version: '1.0.0' }, { capabilities: { elicitation: { url: {} } } });
    const asked: { mode?: string; url?: string; elicitationId?: string }[] = [];
    const completed: string[] = [];
    // Every browser visit the handler starts, awaited before the test ends (and the browser closes).
    const visits: Promise<void>[] = [];
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      const params = request.params as { mode?: string; url?: string; elicitationId?: string };
      asked.push(params);
      // The host opens the link in the user's browser and tells the server the user goes ahead.
      const visit = (async () => {
        const page = await eve.newPage();
        await page.goto(params.url!);
        await page.getByRole('heading', { name: 'Notion is connected' }).waitFor();
      })();
      // Handled here so a failure waits for the await below instead of surfacing unhandled.
      visit.catch(() => {});
      visits.push(visit);
      return { action: 'accept' };
    });
    client.setNotificationHandler(ElicitationCompleteNotificationSchema, (notification) => {
      completed.push(notification.params.elicitationId);
    });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp`), { authProvider: eveProvider }));

    const result = await client.callTool({ name: 'notion__whoami', arguments: {} }).finally(() => Promise.allSettled(visits));
    await Promise.all(visits);
    expect(result.content).toEqual([{ type: 'text', text: 'notion-eve' }]);
    expect(asked).toHaveLength(1);
    expect(asked[0]).toMatchObject({ mode: 'url' });
    expect(asked[0]!.url).toBe(`${gateway.url}/connect?elicitationId=${asked[0]!.elicitationId}`);
    expect(notion.counters.codeExchanges).toBe(exchangesBefore + 1);
    await expect.poll(() => completed).toEqual([asked[0]!.elicitationId]);
    await client.close();
  });
});

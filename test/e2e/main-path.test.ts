import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoUpstream, type DemoUpstream } from '../../server/demo/demo-upstream.js';
import { chromiumAvailable, launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { connectMcp, consentInBrowser, startCallbackServer, TestOAuthProvider, type CallbackServer } from '../helpers/mcp-client.js';
import { temporalUnavailable } from '../helpers/temporal.js';

const skip = Boolean(temporalUnavailable) || (!chromiumAvailable() && process.env.CI !== 'true');

describe.skipIf(skip)('main path: MCP client → gateway OAuth → consent flow → /mcp', () => {
  let gateway: TestGateway;
  let demo: DemoUpstream;
  let browser: TestBrowser;
  let callback: CallbackServer;

  beforeAll(async () => {
    demo = await startDemoUpstream({ host: '127.0.0.1', port: 0 });
    gateway = await startTestGateway((config) => {
      config.upstreams = [{ name: 'demo', displayName: 'Demo tools', mcpUrl: demo.url, auth: 'none', scopes: [] }];
    });
    browser = await launchBrowser();
    callback = await startCallbackServer();
  });

  afterAll(async () => {
    await browser?.close();
    await callback?.close();
    await gateway?.close();
    await demo?.close();
  });

  it('registers dynamically, consents in the browser, lists and calls tools, and refreshes with rotation', async () => {
    const provider = new TestOAuthProvider({ redirectUrl: callback.url, clientName: 'DCR Test Client' });
    const first = await connectMcp(`${gateway.url}/mcp`, provider);
    if (!('authorizationUrl' in first)) throw new Error('expected the gateway to ask for authorization');
    expect(first.authorizationUrl.searchParams.get('code_challenge_method')).toBe('S256');
    expect(first.authorizationUrl.searchParams.get('resource')).toBe(`${gateway.url}/mcp`);

    const page = await browser.newPage();
    await consentInBrowser(page, first.authorizationUrl, { user: 'alice' });
    const result = await callback.next();
    expect(result.error).toBeNull();
    expect(result.iss).toBe(gateway.url);
    await first.transport.finishAuth(result.code!);
    expect(provider.savedTokens?.refresh_token).toBeTruthy();

    const second = await connectMcp(`${gateway.url}/mcp`, provider);
    if (!('client' in second)) throw new Error('expected a connected client');
    const tools = await second.client.listTools();
    expect(tools.tools.map((tool) => tool.name)).toContain('demo__echo');
    const called = await second.client.callTool({ name: 'demo__echo', arguments: { text: 'hello through the gateway' } });
    expect(JSON.stringify(called.content)).toContain('hello through the gateway');
    await second.client.close();
    await page.close();
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCipher } from '../../server/crypto/keys.js';
import { chromiumAvailable, launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { storedText } from '../helpers/stored-text.js';
import { connectMcp, startCallbackServer, TestOAuthProvider, type CallbackServer } from '../helpers/mcp-client.js';
import { temporalUnavailable } from '../helpers/temporal.js';

const skip = Boolean(temporalUnavailable) || (!chromiumAvailable() && process.env.CI !== 'true');

describe.skipIf(skip)('connecting upstream accounts in the consent flow', () => {
  let github: FakeUpstream;
  let notion: FakeUpstream;
  let gateway: TestGateway;
  let browser: TestBrowser;
  let callback: CallbackServer;

  beforeAll(async () => {
    github = await startFakeUpstream({ preset: 'github', autoLogin: 'octo-alice' });
    notion = await startFakeUpstream({ preset: 'notion', autoLogin: 'notion-alice' });
    callback = await startCallbackServer();
    gateway = await startTestGateway((config) => {
      config.upstreams = [
        {
          name: 'github',
          displayName: 'GitHub',
          mcpUrl: github.mcpUrl,
          auth: {
            type: 'oauth',
            issuer: github.issuer,
            client: { kind: 'static', clientId: github.clientId!, clientSecret: github.clientSecret!, authMethod: 'client_secret_post' },
            resource: true,
          },
          scopes: [...github.scopes],
        },
        // Discovery from the MCP URL (RFC 9728) and dynamic registration at the upstream.
        { name: 'notion', displayName: 'Notion', mcpUrl: notion.mcpUrl, auth: { type: 'oauth', client: { kind: 'dynamic' }, resource: true }, scopes: [...notion.scopes] },
      ];
    });
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await callback?.close();
    await gateway?.close();
    await github?.close();
    await notion?.close();
  });

  it('connects GitHub and Notion in one flow, then forwards each call with that user\'s own upstream token', async () => {
    const provider = new TestOAuthProvider({ redirectUrl: callback.url, clientName: 'Connecting Client' });
    const first = await connectMcp(`${gateway.url}/mcp`, provider);
    if (!('authorizationUrl' in first)) throw new Error('expected the gateway to ask for authorization');
    const page = await (await browser.newContext()).newPage();
    await page.goto(first.authorizationUrl.href);
    await page.getByLabel('User name').fill('alice');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('heading', { name: 'Choose services' }).waitFor();

    // Each connect leaves for the upstream and comes back to this screen, with the button gone.
    await page.getByRole('button', { name: 'Connect GitHub' }).click();
    await page.getByRole('button', { name: 'Connect GitHub' }).waitFor({ state: 'detached' });
    await page.getByRole('button', { name: 'Connect Notion' }).click();
    await page.getByRole('button', { name: 'Connect Notion' }).waitFor({ state: 'detached' });
    await page.getByRole('heading', { name: 'Choose services' }).waitFor();
    expect(await page.getByRole('button', { name: 'Connect GitHub' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Connect Notion' }).count()).toBe(0);
    expect(github.counters.codeExchanges).toBe(1);
    expect(notion.counters.codeExchanges).toBe(1);
    expect(notion.counters.registrations).toBe(1);

    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('heading', { name: 'Approve access' }).waitFor();
    await page.getByRole('button', { name: 'Approve' }).click();
    const result = await callback.next();
    await first.transport.finishAuth(result.code!);

    const second = await connectMcp(`${gateway.url}/mcp`, provider);
    if (!('client' in second)) throw new Error('expected a connected client');
    const names = (await second.client.listTools()).tools.map((tool) => tool.name).sort();
    expect(names).toEqual(['github__echo', 'github__whoami', 'notion__echo', 'notion__whoami']);
    const atGithub = await second.client.callTool({ name: 'github__whoami', arguments: {} });
    const atNotion = await second.client.callTool({ name: 'notion__whoami', arguments: {} });
    expect(atGithub.content).toEqual([{ type: 'text', text: 'octo-alice' }]);
    expect(atNotion.content).toEqual([{ type: 'text', text: 'notion-alice' }]);
    expect(github.toolCalls).toEqual([{ accountId: 'octo-alice', tool: 'whoami' }]);
    await expect.poll(async () => (await gateway.store.getUpstreamTokens('alice', 'github'))?.lastUsedAt).toMatch(/^\d{4}-/);
    expect(notion.toolCalls).toEqual([{ accountId: 'notion-alice', tool: 'whoami' }]);
    await second.client.close();

    // At rest the upstream tokens are ciphertext: no token from either upstream is in the store.
    const stored = await gateway.store.getUpstreamTokens('alice', 'notion');
    const cipher = await loadCipher(gateway.config, { debug() {}, info() {}, warn() {}, error() {} });
    const notionAccess = cipher.open(stored!.accessToken, 'upstream_tokens:alice:notion:access');
    const notionRefresh = cipher.open(stored!.refreshToken!, 'upstream_tokens:alice:notion:refresh');
    const githubAccess = cipher.open((await gateway.store.getUpstreamTokens('alice', 'github'))!.accessToken, 'upstream_tokens:alice:github:access');
    const disk = await storedText(gateway.config.store);
    // The dump holds the sealed tokens, so it is the store's content and not something empty.
    expect(disk.includes(stored!.accessToken)).toBe(true);
    for (const token of [notionAccess, notionRefresh, githubAccess]) {
      expect(token.length).toBeGreaterThan(20);
      expect(disk.includes(token)).toBe(false);
    }
  });

  it('shows a clear page with "Try again" when the user refuses at the upstream, and the flow stays alive', async () => {
    const provider = new TestOAuthProvider({ redirectUrl: callback.url, clientName: 'Refusing Client' });
    const first = await connectMcp(`${gateway.url}/mcp`, provider);
    if (!('authorizationUrl' in first)) throw new Error('expected the gateway to ask for authorization');
    github.setAutoLogin(undefined);
    const page = await (await browser.newContext()).newPage();
    await page.goto(first.authorizationUrl.href);
    await page.getByLabel('User name').fill('bob');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('button', { name: 'Connect GitHub' }).click();
    await page.getByRole('button', { name: 'Cancel' }).click();
    await page.getByRole('heading', { name: 'Connecting did not complete' }).waitFor();
    expect(await page.locator('header').textContent()).toBe('Consent Gateway');
    expect(await page.getByText('Error: access_denied').count()).toBe(1);
    await page.getByRole('link', { name: 'Try again' }).click();
    await page.getByRole('heading', { name: 'Choose services' }).waitFor();
    expect(await page.getByRole('button', { name: 'Connect GitHub' }).count()).toBe(1);
    github.setAutoLogin('octo-bob');
    await page.getByRole('button', { name: 'Connect GitHub' }).click();
    await page.getByRole('button', { name: 'Connect GitHub' }).waitFor({ state: 'detached' });
    await page.getByRole('heading', { name: 'Choose services' }).waitFor();
    expect((await gateway.store.getUpstreamTokens('bob', 'github'))?.status).toBe('connected');
  });

  it('shows "Try again" when the upstream refuses the code exchange (a wrong client secret), and the flow stays alive', async () => {
    const broken = await startFakeUpstream({ preset: 'github', autoLogin: 'octo-dan' });
    const brokenGateway = await startTestGateway((config) => {
      config.upstreams = [
        {
          name: 'github',
          displayName: 'GitHub',
          mcpUrl: broken.mcpUrl,
          auth: { type: 'oauth', issuer: broken.issuer, client: { kind: 'static', clientId: broken.clientId!, clientSecret: 'not-the-secret', authMethod: 'client_secret_post' }, resource: true },
          scopes: [...broken.scopes],
        },
      ];
    });
    try {
      const provider = new TestOAuthProvider({ redirectUrl: callback.url, clientName: 'Broken Client' });
      const first = await connectMcp(`${brokenGateway.url}/mcp`, provider);
      if (!('authorizationUrl' in first)) throw new Error('expected the gateway to ask for authorization');
      const page = await (await browser.newContext()).newPage();
      await page.goto(first.authorizationUrl.href);
      await page.getByLabel('User name').fill('dan');
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByRole('button', { name: 'Connect GitHub' }).click();
      await page.getByRole('heading', { name: 'Connecting did not complete' }).waitFor();
      await page.getByText('invalid_client').first().waitFor();
      expect(broken.counters.failedTokenRequests).toBe(1);
      expect(await brokenGateway.store.getUpstreamTokens('dan', 'github')).toBeUndefined();
      await page.getByRole('link', { name: 'Try again' }).click();
      await page.getByRole('heading', { name: 'Choose services' }).waitFor();
      expect(await page.getByRole('button', { name: 'Connect GitHub' }).count()).toBe(1);
    } finally {
      await brokenGateway.close();
      await broken.close();
    }
  });
});

import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { connectMcp, startCallbackServer, TestOAuthProvider, type CallbackServer } from '../helpers/mcp-client.js';
import { temporalUnavailable } from '../helpers/temporal.js';
import { projectDir } from '../../server/paths.js';
import type { UpstreamTokenRecord } from '../../server/store/store.js';

const skip = Boolean(temporalUnavailable) || (!chromiumAvailable() && process.env.CI !== 'true');
/** Set to a folder (`docs`) to save the page at each width there. */
const screenshotsDir = process.env.CG_SCREENSHOTS_DIR ? path.resolve(projectDir, process.env.CG_SCREENSHOTS_DIR) : undefined;

describe.skipIf(skip)('My connections', () => {
  let github: FakeUpstream;
  let gateway: TestGateway;
  let browser: TestBrowser;
  let callback: CallbackServer;
  // One signed-in browser for the whole file: the tests run in order on its state.
  let context: BrowserContext;
  let page: Page;
  let provider: TestOAuthProvider;
  let githubTokens: UpstreamTokenRecord | undefined;

  beforeAll(async () => {
    // Scopes of several words, as real services have, so the layout test sees them wrap.
    github = await startFakeUpstream({ preset: 'github', autoLogin: 'octo-carol', scopes: ['repo', 'read:user', 'read:org', 'profile:read', 'workflow'] });
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
      ];
    });
    browser = await launchBrowser();
    context = await browser.newContext();
    page = await context.newPage();

    provider = new TestOAuthProvider({ redirectUrl: callback.url, clientName: 'Carol Desktop' });
    const first = await connectMcp(`${gateway.url}/mcp`, provider);
    if (!('authorizationUrl' in first)) throw new Error('expected the gateway to ask for authorization');
    await page.goto(first.authorizationUrl.href);
    await page.getByLabel('User name').fill('carol');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('button', { name: 'Connect GitHub' }).click();
    await page.getByRole('button', { name: 'Connect GitHub' }).waitFor({ state: 'detached' });
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('heading', { name: 'Approve access' }).waitFor();
    await page.getByRole('button', { name: 'Approve' }).click();
    const result = await callback.next();
    await page.getByRole('heading', { name: 'Authorization complete' }).waitFor();
    await first.transport.finishAuth(result.code!);
  });

  afterAll(async () => {
    await browser?.close();
    await callback?.close();
    await gateway?.close();
    await github?.close();
  });

  async function csrfOf(target: Page): Promise<string> {
    return (await target.locator('cg-connections-page').getAttribute('csrf-token')) ?? '';
  }

  it('lists the connected service and the approved application of the signed-in user', async () => {
    await page.goto(`${gateway.url}/connections`);
    await page.getByRole('heading', { name: 'My connections' }).waitFor();
    await page.getByText('Signed in as carol').waitFor();
    await page.getByRole('heading', { name: 'Services' }).waitFor();
    const service = page.locator('cg-service-list li', { hasText: 'GitHub' });
    expect(await service.locator('.badge').textContent()).toMatch(/^\s*connected\s*$/);
    expect(await page.getByRole('button', { name: 'Reconnect GitHub', exact: true }).count()).toBe(1);
    expect(await page.getByRole('button', { name: 'Disconnect GitHub', exact: true }).count()).toBe(1);
    await page.getByRole('heading', { name: 'Applications' }).waitFor();
    expect(await page.getByRole('button', { name: 'Revoke Carol Desktop', exact: true }).count()).toBe(1);

    const response = await page.request.get(`${gateway.url}/connections/api`);
    expect(response.status()).toBe(200);
    const body = (await response.json()) as { user: unknown; upstreams: { name: string; status: string; connectedAt: string | null }[]; clients: { clientName: string; upstreams: string[] }[] };
    expect(body.user).toEqual({ id: 'carol' });
    expect(body.upstreams.map((upstream) => [upstream.name, upstream.status])).toEqual([['github', 'connected']]);
    expect(typeof body.upstreams[0]?.connectedAt).toBe('string');
    expect(body.clients.map((client) => [client.clientName, client.upstreams])).toEqual([['Carol Desktop', ['github']]]);
  });

  for (const width of [1280, 390]) {
    it(`keeps every scope and date whole on its line beside the buttons at ${width} px`, async () => {
      const narrow = await context.newPage();
      await narrow.setViewportSize({ width, height: 900 });
      await narrow.goto(`${gateway.url}/connections`);
      await narrow.getByRole('button', { name: 'Disconnect GitHub', exact: true }).waitFor();
      await narrow.getByRole('button', { name: 'Revoke Carol Desktop', exact: true }).waitFor();
      const words = narrow.locator('cg-service-list .word, cg-client-list .word, cg-service-list time, cg-client-list time');
      // A scope broken over two lines ("profile:re / ad") or a date over three has several boxes.
      const boxes = await words.evaluateAll((elements) => elements.map((element) => [element.textContent, element.getClientRects().length]));
      expect(boxes.length).toBeGreaterThan(7);
      expect(boxes.filter(([, lines]) => lines !== 1)).toEqual([]);
      for (const row of await narrow.locator('cg-service-list li, cg-client-list li').all()) {
        const rowBox = (await row.boundingBox())!;
        const details = (await row.locator('.details').boundingBox())!;
        expect(details.width).toBeGreaterThanOrEqual(Math.min(256, rowBox.width - 32));
        for (const button of await row.getByRole('button').all()) {
          const box = (await button.boundingBox())!;
          expect(box.x + box.width).toBeLessThanOrEqual(rowBox.x + rowBox.width);
        }
      }
      if (screenshotsDir) await narrow.screenshot({ path: path.join(screenshotsDir, `connections-${width}.png`), fullPage: true });
      await narrow.close();
    });
  }

  it('refuses a POST without the CSRF token, and changes nothing', async () => {
    const response = await page.request.post(`${gateway.url}/connections/api/upstreams/github/disconnect`, {
      headers: { 'content-type': 'application/json' },
      data: '{}',
    });
    expect(response.status()).toBe(403);
    expect(await response.json()).toEqual({ error: 'access_denied', error_description: 'missing or wrong CSRF token; reload the page' });
    expect((await gateway.store.getUpstreamTokens('carol', 'github'))?.status).toBe('connected');
  });

  it('refuses a cross-origin POST even with the CSRF token', async () => {
    await page.goto(`${gateway.url}/connections`);
    const response = await page.request.post(`${gateway.url}/connections/api/clients/x/revoke`, {
      headers: { 'content-type': 'application/json', 'x-csrf-token': await csrfOf(page), origin: 'https://evil.example' },
      data: '{}',
    });
    expect(response.status()).toBe(403);
    expect(await response.json()).toEqual({ error: 'access_denied', error_description: 'cross-origin request refused' });
  });

  it('shows the sign-in-first page to a browser without a session, and its API answers 401', async () => {
    const other = await (await browser.newContext()).newPage();
    await other.goto(`${gateway.url}/connections`);
    await other.getByRole('heading', { name: 'Sign in first' }).waitFor();
    await other.getByText('sign in when it asks').waitFor();
    expect(await other.getByRole('heading', { name: 'My connections' }).count()).toBe(0);
    const response = await other.request.get(`${gateway.url}/connections/api`);
    expect(response.status()).toBe(401);
    expect(await response.json()).toEqual({ error: 'login_required', error_description: 'sign in through an MCP client first' });
    await other.context().close();
  });

  it('revokes the application: its access token gets 401 at /mcp and its refresh token invalid_grant', async () => {
    const tokens = provider.savedTokens!;
    const before = await fetch(`${gateway.url}/mcp`, { method: 'POST', headers: mcpHeaders(tokens.access_token), body: initialize });
    expect(before.status).toBe(200);

    await page.goto(`${gateway.url}/connections`);
    await page.getByRole('button', { name: 'Revoke Carol Desktop', exact: true }).click();
    await page.getByRole('button', { name: 'Confirm revoke Carol Desktop' }).click();
    await page.getByText('You have not approved any application.').waitFor();
    expect(await page.getByRole('button', { name: 'Revoke Carol Desktop', exact: true }).count()).toBe(0);
    expect(await gateway.store.getConsent('carol', String(provider.clientInformation()?.client_id))).toBeUndefined();

    const after = await fetch(`${gateway.url}/mcp`, { method: 'POST', headers: mcpHeaders(tokens.access_token), body: initialize });
    expect(after.status).toBe(401);
    const refreshed = await fetch(`${gateway.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token!, client_id: String(provider.clientInformation()?.client_id) }),
    });
    expect(refreshed.status).toBe(400);
    expect(((await refreshed.json()) as { error: string }).error).toBe('invalid_grant');
  });

  it('disconnects GitHub: the tokens are gone and the page shows "not connected"', async () => {
    githubTokens = await gateway.store.getUpstreamTokens('carol', 'github');
    expect(githubTokens?.status).toBe('connected');
    await page.goto(`${gateway.url}/connections`);
    const revocationsBefore = github.counters.revocations;
    await page.getByRole('button', { name: 'Disconnect GitHub', exact: true }).click();
    await page.getByRole('button', { name: 'Confirm disconnect GitHub' }).click();
    const badge = page.locator('cg-service-list li', { hasText: 'GitHub' }).locator('.badge');
    await expect.poll(async () => (await badge.textContent())?.trim()).toBe('not connected');
    expect(await gateway.store.getUpstreamTokens('carol', 'github')).toBeUndefined();
    // The grant workflow revoked the token at the upstream's revocation endpoint (RFC 7009) first.
    expect(github.counters.revocations).toBe(revocationsBefore + 1);
    expect(await page.getByRole('button', { name: 'Disconnect GitHub', exact: true }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Reconnect GitHub', exact: true }).count()).toBe(0);
    await page.getByRole('status').filter({ hasText: 'GitHub is disconnected. No application can use it until you connect it again.' }).waitFor();
    expect(await page.getByRole('button', { name: 'Connect GitHub', exact: true }).count()).toBe(1);
    if (screenshotsDir) {
      await page.setViewportSize({ width: 390, height: 900 });
      await page.screenshot({ path: path.join(screenshotsDir, 'connections-disconnected-390.png'), fullPage: true });
      await page.setViewportSize({ width: 1280, height: 720 });
    }
  });

  it('connects GitHub from this page with "Connect GitHub", and leads back to My connections', async () => {
    await page.goto(`${gateway.url}/connections`);
    const exchangesBefore = github.counters.codeExchanges;
    await page.getByRole('button', { name: 'Connect GitHub', exact: true }).click();
    await page.getByRole('heading', { name: 'GitHub is connected' }).waitFor();
    expect(await page.locator('header').textContent()).toBe('Consent Gateway');
    expect(github.counters.codeExchanges).toBe(exchangesBefore + 1);
    expect((await gateway.store.getUpstreamTokens('carol', 'github'))?.status).toBe('connected');
    await page.getByRole('link', { name: 'Back to My connections' }).click();
    const badge = page.locator('cg-service-list li', { hasText: 'GitHub' }).locator('.badge');
    await expect.poll(async () => (await badge.textContent())?.trim()).toBe('connected');
    expect(await page.getByRole('button', { name: 'Connect GitHub', exact: true }).count()).toBe(0);
  });

  it('answers a connect request for an unknown service with 404 JSON, and starts nothing', async () => {
    await page.goto(`${gateway.url}/connections`);
    const response = await page.request.post(`${gateway.url}/connections/api/upstreams/gitlab/connect`, {
      headers: { 'content-type': 'application/json', 'x-csrf-token': await csrfOf(page) },
      data: '{}',
    });
    expect(response.status()).toBe(404);
    expect(await response.json()).toEqual({ error: 'not_found', error_description: 'no such service' });
  });

  it('shows an unknown connect link on a page with the gateway header', async () => {
    const response = await page.goto(`${gateway.url}/connect?elicitationId=${'x'.repeat(32)}`);
    expect(response?.status()).toBe(404);
    await page.getByRole('heading', { name: 'This link is unknown' }).waitFor();
    expect(await page.locator('header').textContent()).toBe('Consent Gateway');
  });

  it('reconnects GitHub through a fresh authorization at GitHub, from this page', async () => {
    await gateway.store.saveUpstreamTokens({ ...githubTokens!, status: 'needs_reconnect' });
    await page.goto(`${gateway.url}/connections`);
    const badge = page.locator('cg-service-list li', { hasText: 'GitHub' }).locator('.badge');
    await expect.poll(async () => (await badge.textContent())?.trim()).toBe('needs reconnect');
    await page.getByRole('button', { name: 'Reconnect GitHub', exact: true }).click();
    const exchangesBefore = github.counters.codeExchanges;
    await page.getByRole('button', { name: 'Confirm reconnect GitHub' }).click();
    await page.getByRole('heading', { name: 'GitHub is connected' }).waitFor();
    expect(github.counters.codeExchanges).toBe(exchangesBefore + 1);
    expect((await gateway.store.getUpstreamTokens('carol', 'github'))?.status).toBe('connected');
    await page.goto(`${gateway.url}/connections`);
    await expect.poll(async () => (await badge.textContent())?.trim()).toBe('connected');
  });
});

const initialize = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});

function mcpHeaders(accessToken: string): Record<string, string> {
  return { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
}

import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { connectMcp, startCallbackServer, TestOAuthProvider, type CallbackServer } from '../helpers/mcp-client.js';
import { temporalUnavailable } from '../helpers/temporal.js';
import type { UpstreamTokenRecord } from '../../server/store/store.js';

const skip = Boolean(temporalUnavailable) || (!chromiumAvailable() && process.env.CI !== 'true');

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
    github = await startFakeUpstream({ preset: 'github', autoLogin: 'octo-carol' });
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
    return (await target.locator('connections-page').getAttribute('csrf-token')) ?? '';
  }

  it('lists the connected service and the approved application of the signed-in user', async () => {
    await page.goto(`${gateway.url}/connections`);
    await page.getByRole('heading', { name: 'My connections' }).waitFor();
    await page.getByText('Signed in as carol').waitFor();
    await page.getByRole('heading', { name: 'Services' }).waitFor();
    const service = page.locator('service-list li', { hasText: 'GitHub' });
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
    const badge = page.locator('service-list li', { hasText: 'GitHub' }).locator('.badge');
    await expect.poll(async () => (await badge.textContent())?.trim()).toBe('not connected');
    expect(await gateway.store.getUpstreamTokens('carol', 'github')).toBeUndefined();
    // The grant workflow revoked the token at the upstream's revocation endpoint (RFC 7009) first.
    expect(github.counters.revocations).toBe(revocationsBefore + 1);
    expect(await page.getByRole('button', { name: 'Disconnect GitHub', exact: true }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Reconnect GitHub', exact: true }).count()).toBe(0);
  });

  it('reconnects GitHub through a fresh authorization at GitHub, from this page', async () => {
    await gateway.store.saveUpstreamTokens({ ...githubTokens!, status: 'needs_reconnect' });
    await page.goto(`${gateway.url}/connections`);
    const badge = page.locator('service-list li', { hasText: 'GitHub' }).locator('.badge');
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

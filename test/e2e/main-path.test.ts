import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoUpstream, type DemoUpstream } from '../../server/demo/demo-upstream.js';
import { startCimdHost, type CimdHost } from '../helpers/cimd-host.js';
import { chromiumAvailable, launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { connectMcp, consentInBrowser, startCallbackServer, TestOAuthProvider, type CallbackServer } from '../helpers/mcp-client.js';
import { temporalUnavailable } from '../helpers/temporal.js';

/** Workflow ids of the consent flows of one client, found the way an operator would (search attributes). */
async function flowsOf(gateway: TestGateway, query: string): Promise<string[]> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const ids: string[] = [];
    for await (const execution of gateway.temporal.workflow.list({ query })) ids.push(execution.workflowId);
    if (ids.length > 0) return ids;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return [];
}

/** Every secret must be absent from the flow's Temporal history and from the gateway's logs. */
async function expectNoSecrets(gateway: TestGateway, workflowId: string, secrets: Record<string, string>): Promise<void> {
  const history = JSON.stringify(await gateway.temporal.workflow.getHandle(workflowId).fetchHistory());
  const decoded = history.replace(/"data":"([A-Za-z0-9+/=]+)"/g, (_m, data: string) => Buffer.from(data, 'base64').toString('utf8'));
  expect(decoded.length).toBeGreaterThan(1000);
  for (const [name, secret] of Object.entries(secrets)) {
    expect(secret.length, name).toBeGreaterThan(8);
    expect(history.includes(secret), `${name} in history`).toBe(false);
    expect(decoded.includes(secret), `${name} in decoded history`).toBe(false);
    expect(gateway.logs.join('\n').includes(secret), `${name} in logs`).toBe(false);
  }
}

const skip = Boolean(temporalUnavailable) || (!chromiumAvailable() && process.env.CI !== 'true');

describe.skipIf(skip)('main path: MCP client → gateway OAuth → consent flow → /mcp', () => {
  let gateway: TestGateway;
  let demo: DemoUpstream;
  let browser: TestBrowser;
  let callback: CallbackServer;
  let cimd: CimdHost;

  beforeAll(async () => {
    demo = await startDemoUpstream({ host: '127.0.0.1', port: 0 });
    cimd = await startCimdHost();
    callback = await startCallbackServer();
    gateway = await startTestGateway((config) => {
      config.upstreams = [{ name: 'demo', displayName: 'Demo tools', mcpUrl: demo.url, auth: { type: 'none' }, scopes: [] }];
      config.clients = [{ clientId: 'desktop-app', clientName: 'Desktop App', redirectUris: [callback.url], clientSecret: 'desktop-app-secret-0123456789' }];
      config.oauth.dangerouslyResolveMetadataHosts = { [cimd.hostname]: { address: '127.0.0.1', ca: cimd.ca } };
    });
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await callback?.close();
    await gateway?.close();
    await demo?.close();
    await cimd?.close();
  });

  it('registers dynamically, consents in the browser, lists and calls tools, and refreshes with rotation', async () => {
    const provider = new TestOAuthProvider({ redirectUrl: callback.url, clientName: 'DCR Test Client' });
    const first = await connectMcp(`${gateway.url}/mcp`, provider);
    if (!('authorizationUrl' in first)) throw new Error('expected the gateway to ask for authorization');
    expect(first.authorizationUrl.searchParams.get('code_challenge_method')).toBe('S256');
    expect(first.authorizationUrl.searchParams.get('resource')).toBe(`${gateway.url}/mcp`);

    // A browser of its own: a signed-in browser would skip the sign-in screen.
    const page = await (await browser.newContext()).newPage();
    await consentInBrowser(page, first.authorizationUrl, { user: 'alice' });
    const result = await callback.next();
    expect(result.error).toBeNull();
    expect(result.iss).toBe(gateway.url);
    const verifier = provider.codeVerifier();
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

    // Refresh rotates: the new refresh token differs and the old one is dead afterwards.
    const tokenEndpoint = `${gateway.url}/token`;
    const clientId = (provider.clientInformation() as { client_id: string }).client_id;
    const oldRefresh = provider.savedTokens!.refresh_token!;
    const refreshed = await fetch(tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: oldRefresh, client_id: clientId }),
    });
    expect(refreshed.status).toBe(200);
    const rotated = (await refreshed.json()) as { access_token: string; refresh_token: string; token_type: string };
    expect(rotated.refresh_token).not.toBe(oldRefresh);
    const withNewToken = await fetch(`${gateway.url}/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${rotated.access_token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } }),
    });
    expect(withNewToken.status).toBe(200);

    // The operator's view: the flow is found by client, by user and by status, and names its step.
    const [byClient] = await flowsOf(gateway, `ConsentClientId = "${clientId}"`);
    expect(byClient).toMatch(/^consent:/);
    expect(await flowsOf(gateway, `ConsentUserId = "alice" AND ConsentClientId = "${clientId}"`)).toEqual([byClient]);
    expect(await flowsOf(gateway, `ConsentFlowStatus = "approved" AND ConsentClientId = "${clientId}"`)).toEqual([byClient]);
    const metadata = await gateway.temporal.workflow.getHandle(byClient!).query<{ currentDetails: string }>('__temporal_workflow_metadata');
    expect(metadata.currentDetails).toContain('Finished: approved');
    expect(metadata.currentDetails).toContain('DCR Test Client');

    await expectNoSecrets(gateway, byClient!, {
      authorizationCode: result.code!,
      codeVerifier: verifier,
      accessToken: provider.savedTokens!.access_token,
      refreshToken: oldRefresh,
      rotatedAccessToken: rotated.access_token,
      rotatedRefreshToken: rotated.refresh_token,
    });
  });

  it('authorizes a client identified by a metadata document (CIMD) served over https', async () => {
    const clientId = `${cimd.origin}/clients/cimd-app.json`;
    cimd.serve('/clients/cimd-app.json', {
      client_id: clientId,
      client_name: 'CIMD App',
      redirect_uris: [callback.url],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    });
    const provider = new TestOAuthProvider({ redirectUrl: callback.url, clientName: 'CIMD App', clientMetadataUrl: clientId });
    const first = await connectMcp(`${gateway.url}/mcp`, provider);
    if (!('authorizationUrl' in first)) throw new Error('expected the gateway to ask for authorization');
    expect(first.authorizationUrl.searchParams.get('client_id')).toBe(clientId);

    // A browser of its own: a signed-in browser would skip the sign-in screen.
    const page = await (await browser.newContext()).newPage();
    await page.goto(first.authorizationUrl.href);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.getByLabel('User name').fill('bob');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('heading', { name: 'Choose services' }).waitFor();
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('heading', { name: 'Approve access' }).waitFor();
    // Text inside the components' shadow roots: getByText pierces them, innerText does not.
    await page.getByText('identified by its metadata document').waitFor();
    expect(await page.getByText(/CIMD App/).count()).toBeGreaterThan(0);
    await page.getByRole('button', { name: 'Approve' }).click();
    const result = await callback.next();
    expect(result.error).toBeNull();
    await first.transport.finishAuth(result.code!);

    const second = await connectMcp(`${gateway.url}/mcp`, provider);
    if (!('client' in second)) throw new Error('expected a connected client');
    const called = await second.client.callTool({ name: 'demo__add', arguments: { a: 2, b: 3 } });
    expect(JSON.stringify(called.content)).toContain('5');
    await second.client.close();
    await page.close();
    expect(cimd.hits.get('/clients/cimd-app.json')).toBeGreaterThanOrEqual(1);
  });

  it('authorizes a client pre-registered in config (confidential, client_secret_basic)', async () => {
    const provider = new TestOAuthProvider({
      redirectUrl: callback.url,
      clientInformation: { client_id: 'desktop-app', client_secret: 'desktop-app-secret-0123456789', token_endpoint_auth_method: 'client_secret_basic' } as never,
    });
    const first = await connectMcp(`${gateway.url}/mcp`, provider);
    if (!('authorizationUrl' in first)) throw new Error('expected the gateway to ask for authorization');
    // A browser of its own: a signed-in browser would skip the sign-in screen.
    const page = await (await browser.newContext()).newPage();
    await page.goto(first.authorizationUrl.href);
    await page.getByLabel('User name').fill('carol');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('heading', { name: 'Choose services' }).waitFor();
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('heading', { name: 'Approve access' }).waitFor();
    await page.getByText('pre-registered by your administrator').waitFor();
    await page.getByRole('button', { name: 'Approve' }).click();
    const result = await callback.next();
    const verifier = provider.codeVerifier();
    await first.transport.finishAuth(result.code!);
    const second = await connectMcp(`${gateway.url}/mcp`, provider);
    if (!('client' in second)) throw new Error('expected a connected client');
    expect((await second.client.listTools()).tools.length).toBeGreaterThan(0);
    await second.client.close();
    await page.close();
    const [flow] = await flowsOf(gateway, 'ConsentClientId = "desktop-app"');
    await expectNoSecrets(gateway, flow!, {
      clientSecret: 'desktop-app-secret-0123456789',
      authorizationCode: result.code!,
      codeVerifier: verifier,
      accessToken: provider.savedTokens!.access_token,
      refreshToken: provider.savedTokens!.refresh_token!,
    });
  });

  it('refuses an MCP session id presented with another user\'s token', async () => {
    async function tokenFor(user: string): Promise<string> {
      const provider = new TestOAuthProvider({ redirectUrl: callback.url, clientName: `Session Client ${user}` });
      const first = await connectMcp(`${gateway.url}/mcp`, provider);
      if (!('authorizationUrl' in first)) throw new Error('expected the gateway to ask for authorization');
      const context = await browser.newContext();
      await consentInBrowser(await context.newPage(), first.authorizationUrl, { user });
      await first.transport.finishAuth((await callback.next()).code!);
      await context.close();
      return provider.savedTokens!.access_token;
    }
    const [dave, erin] = [await tokenFor('dave'), await tokenFor('erin')];
    const post = (token: string, body: unknown, sessionId?: string) =>
      fetch(`${gateway.url}/mcp`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...(sessionId ? { 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' } : {}),
        },
        body: JSON.stringify(body),
      });
    const init = await post(dave, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } });
    expect(init.status).toBe(200);
    const sessionId = init.headers.get('mcp-session-id')!;
    await init.text();
    expect((await post(dave, { jsonrpc: '2.0', method: 'notifications/initialized' }, sessionId)).status).toBe(202);

    const hijack = await post(erin, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, sessionId);
    expect(hijack.status).toBe(404);
    expect(await hijack.json()).toEqual({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: 2 });

    const own = await post(dave, { jsonrpc: '2.0', id: 3, method: 'tools/list' }, sessionId);
    expect(own.status).toBe(200);
    expect(await own.text()).toContain('demo__echo');
  });

  it('skips the approve screen when the same client asks again for the same services, and records it', async () => {
    const provider = new TestOAuthProvider({ redirectUrl: callback.url, clientName: 'Returning Client' });
    const first = await connectMcp(`${gateway.url}/mcp`, provider);
    if (!('authorizationUrl' in first)) throw new Error('expected the gateway to ask for authorization');
    const context = await browser.newContext();
    await consentInBrowser(await context.newPage(), first.authorizationUrl, { user: 'frank' });
    await first.transport.finishAuth((await callback.next()).code!);
    const clientId = (provider.clientInformation() as { client_id: string }).client_id;

    const again = new TestOAuthProvider({ redirectUrl: callback.url, clientInformation: provider.clientInformation() });
    const second = await connectMcp(`${gateway.url}/mcp`, again);
    if (!('authorizationUrl' in second)) throw new Error('expected the gateway to ask for authorization');
    const page = await context.newPage();
    await page.goto(second.authorizationUrl.href);
    // The browser signed in as frank in the first flow: the second starts at the services step.
    await page.getByRole('heading', { name: 'Choose services' }).waitFor();
    await page.getByText('frank').first().waitFor();
    await page.getByRole('button', { name: 'Continue' }).click();
    const result = await callback.next();
    expect(result.error).toBeNull();
    expect(result.code).toBeTruthy();
    await context.close();

    const flows = await flowsOf(gateway, `ConsentClientId = "${clientId}" AND ConsentFlowStatus = "approved"`);
    expect(flows).toHaveLength(2);
    const outcomes = await Promise.all(flows.map((id) => gateway.temporal.workflow.getHandle(id).result()));
    expect(outcomes.filter((outcome) => (outcome as { remembered?: boolean }).remembered === true)).toHaveLength(1);
  });
});

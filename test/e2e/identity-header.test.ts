import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoUpstream, type DemoUpstream } from '../../server/demo/demo-upstream.js';
import { consentWorkflowId, flowState } from '../../workflows/consent-flow/messages.js';
import { chromiumAvailable, launchBrowser } from '../helpers/browser.js';
import { authorizationUrl, ConsentDriver, registerClient, type HttpResult } from '../helpers/consent-driver.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { connectMcp, startCallbackServer, TestOAuthProvider, type CallbackServer } from '../helpers/mcp-client.js';
import { temporalUnavailable } from '../helpers/temporal.js';

const skip = Boolean(temporalUnavailable);
const skipBrowser = !chromiumAvailable() && process.env.CI !== 'true';
const clientRedirectUri = 'http://127.0.0.1:9/client/callback';

async function headerGateway(demo: DemoUpstream, trustedProxies: string[]): Promise<TestGateway> {
  return startTestGateway((config) => {
    config.upstreams = [{ name: 'demo', displayName: 'Demo tools', mcpUrl: demo.url, auth: { type: 'none' }, scopes: [] }];
    config.identity = { mode: 'header', header: { name: 'x-forwarded-user', trustedProxies } };
  });
}

/**
 * Sends the authorization request and follows it to the consent page, every request carrying
 * `headers`, as a reverse proxy adds them to each request it forwards.
 */
async function openFlow(gateway: TestGateway, clientId: string, headers: Record<string, string>): Promise<{ driver: ConsentDriver; uid: string; csrfToken: string; page: HttpResult }> {
  const driver = new ConsentDriver(gateway.url);
  let url = authorizationUrl(gateway.url, { clientId, redirectUri: clientRedirectUri });
  for (let hop = 0; hop < 5; hop += 1) {
    const response = await driver.request(url, { headers });
    if (!response.location) {
      const uid = /^\/interaction\/([^/]+)$/.exec(url.pathname)?.[1];
      const csrfToken = /csrf-token="([^"]+)"/.exec(response.body)?.[1];
      if (!uid || !csrfToken || response.status !== 200) throw new Error(`expected the consent page, got ${url.href} with ${response.status}`);
      return { driver, uid, csrfToken, page: response };
    }
    url = response.location;
  }
  throw new Error('too many redirects');
}

describe.skipIf(skip)('header identity from a trusted proxy', () => {
  let gateway: TestGateway;
  let demo: DemoUpstream;
  let callback: CallbackServer;
  let clientId: string;

  beforeAll(async () => {
    demo = await startDemoUpstream({ host: '127.0.0.1', port: 0 });
    callback = await startCallbackServer();
    gateway = await headerGateway(demo, ['127.0.0.1']);
    clientId = await registerClient(gateway.url, [clientRedirectUri], 'Header identity test client');
  });

  afterAll(async () => {
    await gateway?.close();
    await callback?.close();
    await demo?.close();
  });

  it('moves the flow to services as the header user when the consent page is requested', async () => {
    const { driver, uid } = await openFlow(gateway, clientId, { 'x-forwarded-user': 'carol' });
    const state = await driver.state(uid);
    expect(state.status).toBe(200);
    expect(state.body).toMatchObject({ step: 'services', status: 'choosing_services', identityMode: 'header', user: { id: 'carol' } });
    expect(await gateway.temporal.workflow.getHandle(consentWorkflowId(uid)).query(flowState)).toMatchObject({ userId: 'carol', identitySource: 'header' });
  });

  it('moves the flow when /state is read with the header, and not before', async () => {
    const { driver, uid } = await openFlow(gateway, clientId, {});
    expect((await driver.state(uid)).body).toMatchObject({ step: 'identity', user: null });
    const state = await driver.request(`/interaction/${uid}/state`, { headers: { 'x-forwarded-user': 'dave' } });
    expect(state.status).toBe(200);
    expect(JSON.parse(state.body)).toMatchObject({ step: 'services', user: { id: 'dave' } });
  });

  it('keeps the first user when later requests name another one', async () => {
    const { driver, uid } = await openFlow(gateway, clientId, { 'x-forwarded-user': 'erin' });
    const later = await driver.request(`/interaction/${uid}/state`, { headers: { 'x-forwarded-user': 'mallory' } });
    expect(JSON.parse(later.body)).toMatchObject({ step: 'services', user: { id: 'erin' } });
  });

  it('refuses POST /identity with 400 naming the mode', async () => {
    const { driver, uid, csrfToken } = await openFlow(gateway, clientId, {});
    const posted = await driver.post(uid, 'identity', { userId: 'mallory' }, { csrfToken });
    expect(posted.status).toBe(400);
    expect(posted.body.error).toBe('invalid_request');
    expect(posted.body.error_description).toContain('identity mode header');
    expect((await driver.state(uid)).body).toMatchObject({ step: 'identity', user: null });
  });

  it.skipIf(skipBrowser)('runs the whole consent in a browser behind the proxy; the MCP client acts as the header user', async () => {
    const provider = new TestOAuthProvider({ redirectUrl: callback.url, clientName: 'Header Browser Client' });
    const first = await connectMcp(`${gateway.url}/mcp`, provider);
    if (!('authorizationUrl' in first)) throw new Error('expected the gateway to ask for authorization');
    const browser = await launchBrowser();
    try {
      const context = await browser.newContext();
      await context.setExtraHTTPHeaders({ 'x-forwarded-user': 'carol' });
      const page = await context.newPage();
      await page.goto(first.authorizationUrl.href);
      await page.getByRole('heading', { name: 'Choose services' }).waitFor();
      await page.getByText('Signed in as carol').waitFor();
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByRole('heading', { name: 'Approve access' }).waitFor();
      await page.getByRole('button', { name: 'Approve' }).click();
      const result = await callback.next();
      expect(result.error).toBeNull();
      await first.transport.finishAuth(result.code!);
    } finally {
      await browser.close();
    }
    const second = await connectMcp(`${gateway.url}/mcp`, provider);
    if (!('client' in second)) throw new Error('expected a connected client');
    expect((await second.client.listTools()).tools.map((tool) => tool.name)).toContain('demo__echo');
    await second.client.close();
    expect((await gateway.gateway.oauth.provider.AccessToken.find(provider.savedTokens!.access_token))?.accountId).toBe('carol');
  });
});

describe.skipIf(skip)('header identity from an address that is not a trusted proxy', () => {
  let gateway: TestGateway;
  let demo: DemoUpstream;
  let clientId: string;

  beforeAll(async () => {
    demo = await startDemoUpstream({ host: '127.0.0.1', port: 0 });
    gateway = await headerGateway(demo, ['10.9.9.9']);
    clientId = await registerClient(gateway.url, [clientRedirectUri], 'Untrusted header test client');
  });

  afterAll(async () => {
    await gateway?.close();
    await demo?.close();
  });

  it('ignores the header on the page and on /state, and warns without the value', async () => {
    const headers = { 'x-forwarded-user': 'carol' };
    const { driver, uid } = await openFlow(gateway, clientId, headers);
    const state = await driver.request(`/interaction/${uid}/state`, { headers });
    expect(state.status).toBe(200);
    expect(JSON.parse(state.body)).toMatchObject({ step: 'identity', status: 'identifying', user: null, identityMode: 'header' });
    expect(await gateway.temporal.workflow.getHandle(consentWorkflowId(uid)).query(flowState)).toMatchObject({ userId: null, identitySource: null });
    const warnings = gateway.logs.filter((line) => line.includes('identity header ignored') && line.includes(`flowId=${uid}`));
    expect(warnings.length).toBeGreaterThanOrEqual(2);
    expect(warnings[0]).toContain('peer=127.0.0.1');
    expect(gateway.logs.join('\n')).not.toContain('carol');
  });

  it('refuses POST /identity with a user name', async () => {
    const { driver, uid, csrfToken } = await openFlow(gateway, clientId, {});
    const posted = await driver.post(uid, 'identity', { userId: 'mallory' }, { csrfToken });
    expect(posted.status).toBe(400);
    expect(posted.body.error).toBe('invalid_request');
    expect(posted.body.error_description).toContain('identity mode header');
    expect((await driver.state(uid)).body).toMatchObject({ step: 'identity', user: null });
  });
});

import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startDemoUpstream, type DemoUpstream } from '../../server/demo/demo-upstream.js';
import { PendingLogins } from '../../server/identity/pending-logins.js';
import type { RedirectResult } from '../../server/views/consent.js';
import { consentWorkflowId, flowState } from '../../workflows/consent-flow/messages.js';
import { chromiumAvailable, launchBrowser } from '../helpers/browser.js';
import { authorizationUrl, ConsentDriver, registerClient } from '../helpers/consent-driver.js';
import { startFakeIdp, type FakeIdp } from '../helpers/fake-idp.js';
import { freePort } from '../helpers/free-port.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { connectMcp, startCallbackServer, TestOAuthProvider, type CallbackServer } from '../helpers/mcp-client.js';
import { temporalUnavailable } from '../helpers/temporal.js';

const skip = Boolean(temporalUnavailable);
const skipBrowser = !chromiumAvailable() && process.env.CI !== 'true';
const subject = 'idp-sub-7f3a9c';
const clientRedirectUri = 'http://127.0.0.1:9/client/callback';

describe.skipIf(skip)('oidc identity: sign-in at the IdP moves the consent flow', () => {
  let idp: FakeIdp;
  let gateway: TestGateway;
  let demo: DemoUpstream;
  let callback: CallbackServer;
  let clientId: string;

  beforeAll(async () => {
    demo = await startDemoUpstream({ host: '127.0.0.1', port: 0 });
    callback = await startCallbackServer();
    // The IdP's client needs the gateway's exact callback URL, and the gateway the IdP's issuer.
    const idpPort = await freePort();
    const idpSecret = randomBytes(24).toString('base64url');
    gateway = await startTestGateway((config) => {
      config.upstreams = [{ name: 'demo', displayName: 'Demo tools', mcpUrl: demo.url, auth: { type: 'none' }, scopes: [] }];
      config.identity = { mode: 'oidc', oidc: { issuer: `http://127.0.0.1:${idpPort}`, clientId: 'consent-gateway', clientSecret: idpSecret, scopes: ['openid'] } };
    });
    idp = await startFakeIdp({ port: idpPort, redirectUris: [`${gateway.url}/oauth/idp/callback`], clientSecret: idpSecret, autoLogin: subject });
    clientId = await registerClient(gateway.url, [clientRedirectUri], 'OIDC identity test client');
  });

  afterAll(async () => {
    await idp?.close();
    await gateway?.close();
    await callback?.close();
    await demo?.close();
  });

  beforeEach(() => {
    idp.answerWith({ login: subject });
  });

  /** A fresh cookie jar opens a consent flow for the registered client. */
  async function openFlow(): Promise<{ driver: ConsentDriver; uid: string }> {
    const driver = new ConsentDriver(gateway.url);
    const { uid } = await driver.start(authorizationUrl(gateway.url, { clientId, redirectUri: clientRedirectUri }));
    return { driver, uid };
  }

  /** `POST /identity` with `{}`: the IdP's authorization URL. */
  async function toIdp(driver: ConsentDriver, uid: string): Promise<URL> {
    const started = await driver.post(uid, 'identity', {});
    expect(started.status).toBe(200);
    return new URL((started.body as unknown as RedirectResult).redirectTo);
  }

  async function expectAtIdentity(driver: ConsentDriver, uid: string): Promise<void> {
    const state = await driver.state(uid);
    expect(state.status).toBe(200);
    expect(state.body).toMatchObject({ step: 'identity', status: 'identifying', user: null, identityMode: 'oidc' });
  }

  it.skipIf(skipBrowser)('signs in at the IdP from the Sign in screen; the MCP client gets tokens for the IdP user', async () => {
    const provider = new TestOAuthProvider({ redirectUrl: callback.url, clientName: 'OIDC Browser Client' });
    const first = await connectMcp(`${gateway.url}/mcp`, provider);
    if (!('authorizationUrl' in first)) throw new Error('expected the gateway to ask for authorization');
    const exchanges = idp.counters.codeExchanges;

    const browser = await launchBrowser();
    try {
      const page = await (await browser.newContext()).newPage();
      await page.goto(first.authorizationUrl.href);
      await page.getByRole('heading', { name: 'Sign in' }).waitFor();
      expect(await page.getByLabel('User name').count()).toBe(0);
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByRole('heading', { name: 'Choose services' }).waitFor();
      await page.getByText(`Signed in as ${subject}`).waitFor();
      expect(new URL(page.url()).pathname).toMatch(/^\/interaction\/[A-Za-z0-9_-]+$/);
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByRole('heading', { name: 'Approve access' }).waitFor();
      await page.getByRole('button', { name: 'Approve' }).click();
      const result = await callback.next();
      expect(result.error).toBeNull();
      await first.transport.finishAuth(result.code!);
    } finally {
      await browser.close();
    }
    expect(idp.counters.codeExchanges).toBe(exchanges + 1);

    const second = await connectMcp(`${gateway.url}/mcp`, provider);
    if (!('client' in second)) throw new Error('expected a connected client');
    const called = await second.client.callTool({ name: 'demo__echo', arguments: { text: 'signed in at the IdP' } });
    expect(JSON.stringify(called.content)).toContain('signed in at the IdP');
    await second.client.close();

    const token = await gateway.gateway.oauth.provider.AccessToken.find(provider.savedTokens!.access_token);
    expect(token?.accountId).toBe(subject);
    const mcpClientId = (provider.clientInformation() as { client_id: string }).client_id;
    expect(await gateway.store.getConsent(subject, mcpClientId)).toMatchObject({ userId: subject, clientId: mcpClientId, upstreams: ['demo'] });
  });

  it('signs in without a browser and keeps the code, state, nonce and verifier out of history and logs', async () => {
    const { driver, uid } = await openFlow();
    const authorize = await toIdp(driver, uid);
    const state = authorize.searchParams.get('state')!;
    const nonce = authorize.searchParams.get('nonce')!;
    const verifier = (await new PendingLogins(gateway.store.oauth).find(state))?.codeVerifier;
    expect(verifier).toBeTruthy();

    const back = await idp.completeAuthorization(authorize);
    expect(`${back.origin}${back.pathname}`).toBe(`${gateway.url}/oauth/idp/callback`);
    expect(back.searchParams.get('iss')).toBe(idp.issuer);
    const code = back.searchParams.get('code')!;
    const returned = await driver.request(back);
    expect(returned.status).toBe(303);
    expect(returned.location?.href).toBe(`${gateway.url}/interaction/${uid}`);
    const signedIn = await driver.state(uid);
    expect(signedIn.body).toMatchObject({ step: 'services', user: { id: subject } });
    const handle = gateway.temporal.workflow.getHandle(consentWorkflowId(uid));
    expect(await handle.query(flowState)).toMatchObject({ userId: subject, identitySource: 'oidc' });

    expect((await driver.post(uid, 'services', { upstreams: ['demo'] })).status).toBe(200);
    const decided = await driver.post(uid, 'decision', { decision: 'approve' });
    expect(decided.body.redirectTo).toBeTruthy();
    expect((await driver.followToClient(decided.body.redirectTo!)).searchParams.get('code')).toBeTruthy();

    const history = JSON.stringify(await handle.fetchHistory());
    const decoded = history.replace(/"data":"([A-Za-z0-9+/=]+)"/g, (_match, data: string) => Buffer.from(data, 'base64').toString('utf8'));
    expect(decoded).toContain(subject);
    const logs = gateway.logs.join('\n');
    expect(logs).toContain(subject);
    for (const [name, secret] of Object.entries({ code, state, nonce, verifier: verifier! })) {
      expect(decoded.includes(secret), `${name} in history`).toBe(false);
      expect(logs.includes(secret), `${name} in logs`).toBe(false);
    }

    const replayed = await driver.request(back);
    expect(replayed.status).toBe(400);
    expect(replayed.body).toContain('unknown_state');
  });

  it('answers a forged state with a 400 page, without calling the IdP, and the flow stays at identity', async () => {
    const { driver, uid } = await openFlow();
    await toIdp(driver, uid);
    const before = { ...idp.counters };
    const forged = await driver.request(`/oauth/idp/callback?code=stolen-code&state=forged-state&iss=${encodeURIComponent(idp.issuer)}`);
    expect(forged.status).toBe(400);
    expect(forged.headers.get('content-type')).toMatch(/^text\/html/);
    expect(forged.body).toContain('Sign-in did not complete');
    expect(forged.body).toContain('unknown_state');
    expect(forged.body).not.toContain('Try again');
    expect(idp.counters).toEqual(before);
    await expectAtIdentity(driver, uid);
  });

  it('shows a Try again page when the IdP answers access_denied, and the next try signs in', async () => {
    const { driver, uid } = await openFlow();
    idp.answerWith({ error: 'access_denied', description: 'The user said no' });
    const back = await idp.completeAuthorization(await toIdp(driver, uid));
    expect(back.searchParams.get('error')).toBe('access_denied');
    const refused = await driver.request(back);
    expect(refused.status).toBe(400);
    expect(refused.headers.get('content-type')).toMatch(/^text\/html/);
    expect(refused.body).toContain('access_denied');
    expect(refused.body).toContain(`<a href="/interaction/${uid}">Try again</a>`);
    await expectAtIdentity(driver, uid);

    idp.answerWith({ login: subject });
    expect((await driver.open(uid)).status).toBe(200);
    const signedIn = await driver.request(await idp.completeAuthorization(await toIdp(driver, uid)));
    expect(signedIn.status).toBe(303);
    expect((await driver.state(uid)).body).toMatchObject({ step: 'services', user: { id: subject } });
  });

  it('refuses a response naming another issuer (RFC 9207) with a Try again page, before the token endpoint', async () => {
    const { driver, uid } = await openFlow();
    const back = await idp.completeAuthorization(await toIdp(driver, uid));
    back.searchParams.set('iss', 'http://127.0.0.1:1');
    const before = { ...idp.counters };
    const refused = await driver.request(back);
    expect(refused.status).toBe(400);
    expect(refused.body).toContain('invalid_authorization_response');
    expect(refused.body).toContain(`<a href="/interaction/${uid}">Try again</a>`);
    expect(idp.counters).toEqual(before);
    await expectAtIdentity(driver, uid);
  });

  it('shows a Try again page when the token endpoint refuses the code', async () => {
    const { driver, uid } = await openFlow();
    const back = await idp.completeAuthorization(await toIdp(driver, uid));
    back.searchParams.set('code', 'not-the-code');
    const failed = idp.counters.failedTokenRequests;
    const refused = await driver.request(back);
    expect(refused.status).toBe(502);
    expect(refused.body).toContain('token_request_failed');
    expect(refused.body).toContain(`<a href="/interaction/${uid}">Try again</a>`);
    expect(idp.counters.failedTokenRequests).toBe(failed + 1);
    await expectAtIdentity(driver, uid);
  });

  it('refuses the callback in a browser the flow is not bound to; the flow’s browser can still finish', async () => {
    const { driver, uid } = await openFlow();
    const back = await idp.completeAuthorization(await toIdp(driver, uid));
    const before = { ...idp.counters };
    const elsewhere = await new ConsentDriver(gateway.url).request(back);
    expect(elsewhere.status).toBe(403);
    expect(elsewhere.headers.get('content-type')).toMatch(/^text\/html/);
    expect(elsewhere.body).toContain('session_not_found');
    expect(idp.counters).toEqual(before);
    await expectAtIdentity(driver, uid);

    const returned = await driver.request(back);
    expect(returned.status).toBe(303);
    expect((await driver.state(uid)).body).toMatchObject({ step: 'services', user: { id: subject } });
  });

  it('refuses a typed user name with 400', async () => {
    const { driver, uid } = await openFlow();
    const typed = await driver.post(uid, 'identity', { userId: 'mallory' });
    expect(typed.status).toBe(400);
    expect(typed.body.error).toBe('invalid_request');
    expect(typed.body.error_description).toContain('oidc');
    await expectAtIdentity(driver, uid);
  });

  it('answers 409 to a second sign-in start once the flow is past identity', async () => {
    const { driver, uid } = await openFlow();
    await driver.request(await idp.completeAuthorization(await toIdp(driver, uid)));
    const again = await driver.post(uid, 'identity', {});
    expect(again.status).toBe(409);
    expect(again.body.error).toBe('invalid_transition');
  });
});

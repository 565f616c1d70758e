import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consentWorkflowId, flowState } from '../../workflows/consent-flow/messages.js';
import { authorizationUrl, ConsentDriver, createPkce, registerClient } from '../helpers/consent-driver.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startCallbackServer, type CallbackServer } from '../helpers/mcp-client.js';
import { temporalUnavailable } from '../helpers/temporal.js';
import { githubUpstreamConfig } from '../helpers/upstream-account.js';

/**
 * RFC 9207 on the upstream callback: the authorization server (oidc-provider) advertises
 * `authorization_response_iss_parameter_supported` and sends `iss`, so an answer with this
 * attempt's state but without `iss`, or naming another issuer, is not its own: refused with a page,
 * whether it carries a code or an error, and the attempt stays open for the real answer.
 */
describe.skipIf(temporalUnavailable)('iss on the answers to the upstream callback (RFC 9207)', () => {
  let github: FakeUpstream;
  let gateway: TestGateway;
  let callback: CallbackServer;
  let clientId: string;

  beforeAll(async () => {
    github = await startFakeUpstream({ preset: 'github', autoLogin: 'octo-iss' });
    callback = await startCallbackServer();
    gateway = await startTestGateway((config) => {
      config.upstreams = [githubUpstreamConfig(github)];
    });
    clientId = await registerClient(gateway.url, [callback.url], 'Issuer Check Client');
  });

  afterAll(async () => {
    await callback?.close();
    await gateway?.close();
    await github?.close();
  });

  /** A consent flow at the services step with a connect to GitHub sent there: the upstream's real answer, not yet delivered. */
  async function connectAnswer(user: string): Promise<{ driver: ConsentDriver; uid: string; answer: URL }> {
    const driver = new ConsentDriver(gateway.url);
    const { uid } = await driver.start(authorizationUrl(gateway.url, { clientId, redirectUri: callback.url, pkce: createPkce() }));
    expect((await driver.post(uid, 'identity', { userId: user })).status).toBe(200);
    const answer = await github.completeAuthorization(await driver.connect(uid, 'github'));
    expect(answer.pathname).toBe('/oauth/upstream/callback');
    expect(answer.searchParams.get('iss')).toBe(github.issuer);
    return { driver, uid, answer };
  }

  /** Where the flow's connect to GitHub stands, as the workflow holds it. */
  async function githubConnection(uid: string) {
    return (await gateway.temporal.workflow.getHandle(consentWorkflowId(uid)).query(flowState)).connections.github;
  }

  it('refuses an error or a code without iss or naming another issuer, and the attempt still connects with the real answer', async () => {
    const { driver, uid, answer } = await connectAnswer('ivy');
    const state = answer.searchParams.get('state')!;
    expect(await githubConnection(uid)).toMatchObject({ status: 'pending', error: null });
    const forgeries: Record<string, string>[] = [
      { error: 'access_denied', state },
      { error: 'access_denied', state, iss: 'https://attacker.example' },
      { error: 'access_denied', state, iss: `${github.issuer}/` },
      { code: 'forged-code', state, iss: 'https://attacker.example' },
      { code: 'forged-code', state },
    ];
    for (const forged of forgeries) {
      const page = await driver.request(`/oauth/upstream/callback?${new URLSearchParams(forged)}`);
      expect(page.status, JSON.stringify(forged)).toBe(400);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      expect(page.body).toContain('Connecting did not complete');
      expect(page.body).toContain('GitHub&#39;s authorization server');
      expect(page.body).not.toContain('did not grant access');
      expect(await githubConnection(uid)).toMatchObject({ status: 'pending', error: null });
    }
    expect(github.counters.codeExchanges).toBe(0);

    const done = await driver.request(answer.href);
    expect(done.status, done.body.slice(0, 500)).toBe(302);
    expect(done.location?.pathname).toBe(`/interaction/${uid}`);
    expect(await githubConnection(uid)).toMatchObject({ status: 'connected' });
    expect(github.counters.codeExchanges).toBe(1);
  }, 60_000);

  it('takes an error that names the issuer: the attempt fails with the upstream\'s error', async () => {
    const { driver, uid, answer } = await connectAnswer('jon');
    const refused = new URLSearchParams({ error: 'access_denied', state: answer.searchParams.get('state')!, iss: github.issuer });
    const page = await driver.request(`/oauth/upstream/callback?${refused}`);
    expect(page.status).toBe(400);
    expect(page.body).toContain('GitHub did not grant access (access_denied)');
    expect(await githubConnection(uid)).toMatchObject({ status: 'failed', error: 'access_denied' });
    // The attempt is over: its real answer comes too late and connects nothing.
    const exchanges = github.counters.codeExchanges;
    const late = await driver.request(answer.href);
    expect(late.status).toBeGreaterThanOrEqual(400);
    expect(github.counters.codeExchanges).toBe(exchanges);
    expect(await githubConnection(uid)).toMatchObject({ status: 'failed', error: 'access_denied' });
  }, 60_000);
});

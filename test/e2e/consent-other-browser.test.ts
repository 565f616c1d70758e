import { randomUUID } from 'node:crypto';
import { WorkflowNotFoundError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consentWorkflowId, flowState, type ConsentFlowState } from '../../workflows/consent-flow/messages.js';
import { authorizationUrl, ConsentDriver, registerClient } from '../helpers/consent-driver.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { temporalUnavailable } from '../helpers/temporal.js';

const skip = Boolean(temporalUnavailable);
const redirectUri = 'http://127.0.0.1:9/callback';

/**
 * A consent decision counts only where the authorization can finish: in the browser that sent the
 * authorization request (it holds the OAuth server's interaction cookie). Two cookie jars over
 * plain HTTP are the two browsers.
 */
describe.skipIf(skip)('a consent flow opened in another browser', () => {
  let gateway: TestGateway;
  let clientId: string;

  beforeAll(async () => {
    gateway = await startTestGateway();
    clientId = await registerClient(gateway.url, [redirectUri]);
  });

  afterAll(async () => {
    await gateway?.close();
  });

  async function flow(uid: string): Promise<ConsentFlowState | undefined> {
    try {
      return await gateway.temporal.workflow.getHandle(consentWorkflowId(uid)).query(flowState);
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) return undefined;
      throw error;
    }
  }

  /** A fresh browser runs a whole new flow as `user` up to the approve screen, or past it when approval is skipped. */
  async function nextFlowStep(user: string): Promise<string> {
    const driver = new ConsentDriver(gateway.url);
    const { uid } = await driver.start(authorizationUrl(gateway.url, { clientId, redirectUri, state: randomUUID() }));
    expect((await driver.post(uid, 'identity', { userId: user })).status).toBe(200);
    const services = await driver.post(uid, 'services', { upstreams: [] });
    expect(services.status).toBe(200);
    return services.body.step;
  }

  it('refuses the consent page and every step in a browser that did not send the authorization request', async () => {
    const user = `mallory-target-${randomUUID()}`;
    const x = new ConsentDriver(gateway.url);
    const sent = await x.request(authorizationUrl(gateway.url, { clientId, redirectUri, state: randomUUID() }));
    const uid = sent.location ? /^\/interaction\/([^/]+)$/.exec(sent.location.pathname)?.[1] : undefined;
    if (!uid) throw new Error(`the authorization request answered ${sent.status} ${sent.location?.href ?? ''}`);

    const y = new ConsentDriver(gateway.url);
    const page = await y.open(uid);
    expect(page.status).toBe(403);
    expect(page.body).toContain('This sign-in request belongs to another browser');
    for (const [step, body] of [['identity', { userId: user }], ['services', { upstreams: [] }], ['decision', { decision: 'approve' }]] as const) {
      const answer = await y.post(uid, step, body, { csrfToken: 'none' });
      expect(answer.status).toBe(403);
      expect(answer.body.error).toBe('access_denied');
    }
    expect((await flow(uid))?.status).not.toBe('approved');
    expect(await gateway.store.getConsent(user, clientId)).toBeUndefined();

    // The browser that sent the request still gets the whole flow, approve screen included.
    expect((await x.open(uid)).status).toBe(200);
    expect((await x.post(uid, 'identity', { userId: user })).status).toBe(200);
    expect((await x.post(uid, 'services', { upstreams: [] })).body.step).toBe('approve');
  });

  it('refuses an approval from a browser without the interaction cookie before the workflow records it', async () => {
    const user = `lost-cookie-${randomUUID()}`;
    const driver = new ConsentDriver(gateway.url);
    const { uid, url } = await driver.start(authorizationUrl(gateway.url, { clientId, redirectUri, state: randomUUID() }));
    expect((await driver.post(uid, 'identity', { userId: user })).status).toBe(200);
    expect((await driver.post(uid, 'services', { upstreams: [] })).body.step).toBe('approve');
    // The browser keeps its page, its flow cookie and CSRF token, but no longer the interaction cookie.
    driver.jar.store(url, ['cg_interaction=; Max-Age=0', 'cg_interaction.sig=; Max-Age=0'].map((cookie) => `${cookie}; Path=${url.pathname}`));
    expect(driver.jar.names()).not.toContain('cg_interaction');

    const decided = await driver.post(uid, 'decision', { decision: 'approve' });
    expect(decided.status).toBe(403);
    expect(decided.body).toEqual({ error: 'access_denied', error_description: 'this sign-in request can only be finished in the browser that started it; start again from your application' });
    expect(await flow(uid)).toMatchObject({ step: 'approve', status: 'awaiting_approval', outcome: null });
    expect(await gateway.store.getConsent(user, clientId)).toBeUndefined();
    expect(await nextFlowStep(user)).toBe('approve');
  });
});

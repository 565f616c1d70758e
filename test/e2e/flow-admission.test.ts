import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricsRegistry } from '../../server/metrics.js';
import { authorizationUrl, ConsentDriver, createPkce, postForm, registerClient } from '../helpers/consent-driver.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { temporalUnavailable } from '../helpers/temporal.js';

const skip = Boolean(temporalUnavailable);
const redirectUri = 'http://127.0.0.1:9/callback';
const browserAccept = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';

/** The current value of one of the admission metrics (the registry is shared by every gateway of this process). */
async function metric(name: 'gateway_flow_request_admissions_total' | 'gateway_flow_requests_waiting', outcome?: string): Promise<number> {
  const values = (await metricsRegistry.getSingleMetric(name)?.get())?.values ?? [];
  return values.filter((value) => outcome === undefined || value.labels['outcome'] === outcome).reduce((sum, value) => sum + value.value, 0);
}

/** Resolves once `check` holds, checking every 20 ms (up to a minute). */
async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let tries = 0; tries < 3_000; tries += 1) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`still waiting for ${what}`);
}

describe.skipIf(skip)('requests that wait on Temporal take turns (temporal.flowRequests)', () => {
  describe('one at a time, with room to wait', () => {
    let gateway: TestGateway;
    let clientId: string;

    beforeAll(async () => {
      gateway = await startTestGateway((config) => {
        config.temporal.flowRequests = { concurrency: 1, queue: 1_000, queueTimeoutMs: 300_000 };
      });
      clientId = await registerClient(gateway.url, [redirectUri]);
    }, 120_000);
    afterAll(async () => gateway?.close(), 60_000);

    it('serves a burst of consent flows in turn: every flow ends with a code and a token', { timeout: 300_000 }, async () => {
      const [waitedBefore, refusedBefore] = [await metric('gateway_flow_request_admissions_total', 'after_waiting'), await metric('gateway_flow_request_admissions_total', 'queue_full')];
      const flows = await Promise.all(
        Array.from({ length: 8 }, async (_, index) => {
          const pkce = createPkce();
          const back = await new ConsentDriver(gateway.url).consent(authorizationUrl(gateway.url, { clientId, redirectUri, pkce, state: `burst-${index}` }), {
            user: `burst-${index}-${randomUUID()}`,
          });
          const code = back.searchParams.get('code');
          expect(code, back.search).toBeTruthy();
          const token = await postForm(gateway.url, '/token', { grant_type: 'authorization_code', code: code ?? '', redirect_uri: redirectUri, client_id: clientId, code_verifier: pkce.verifier });
          return { state: back.searchParams.get('state'), token: token.body.access_token };
        }),
      );
      expect(flows.map((flow) => flow.state)).toEqual(Array.from({ length: 8 }, (_, index) => `burst-${index}`));
      expect(flows.every((flow) => typeof flow.token === 'string' && flow.token.length > 0)).toBe(true);
      // With one at a time, eight flows at once had to wait their turn, and none was turned away.
      expect(await metric('gateway_flow_request_admissions_total', 'after_waiting')).toBeGreaterThan(waitedBefore);
      expect(await metric('gateway_flow_request_admissions_total', 'queue_full')).toBe(refusedBefore);
      expect(await metric('gateway_flow_requests_waiting')).toBe(0);
    });
  });

  describe('one at a time, room for one more to wait', () => {
    let gateway: TestGateway;
    let clientId: string;

    beforeAll(async () => {
      // No worker: a step update then waits out the request's Temporal deadline, holding the one turn.
      gateway = await startTestGateway(
        (config) => {
          config.temporal.requestTimeoutMs = 10_000;
          config.temporal.flowRequests = { concurrency: 1, queue: 1, queueTimeoutMs: 1_000 };
        },
        { worker: false },
      );
      clientId = await registerClient(gateway.url, [redirectUri]);
    }, 120_000);
    afterAll(async () => gateway?.close(), 60_000);

    it('answers 503 with Retry-After (a page for a browser, JSON for the API) when the queue is full or the wait too long', { timeout: 120_000 }, async () => {
      const drivers = [new ConsentDriver(gateway.url), new ConsentDriver(gateway.url), new ConsentDriver(gateway.url)];
      const uids: string[] = [];
      for (const driver of drivers) uids.push((await driver.start(authorizationUrl(gateway.url, { clientId, redirectUri, state: randomUUID() }))).uid);
      const [first, second, third] = drivers as [ConsentDriver, ConsentDriver, ConsentDriver];

      // The first flow's identity step takes the one turn and keeps it until its deadline.
      const started = await metric('gateway_flow_request_admissions_total', 'at_once');
      const holding = first.post(uids[0]!, 'identity', { userId: `holder-${randomUUID()}` });
      await until('the first step to run', async () => (await metric('gateway_flow_request_admissions_total', 'at_once')) > started);

      // The second waits in the one place of the queue…
      const waiting = second.request(`/interaction/${uids[1]}/state`, { headers: { accept: 'application/json' } });
      await until('the second request to wait', async () => (await metric('gateway_flow_requests_waiting')) === 1);

      // …so the third is turned away at once: JSON for the page API, a page for a browser.
      const refusedBefore = await metric('gateway_flow_request_admissions_total', 'queue_full');
      const api = await third.post(uids[2]!, 'identity', { userId: `third-${randomUUID()}` });
      expect(api.status).toBe(503);
      expect(api.headers.get('retry-after')).toBe('10');
      expect(api.body.error).toBe('temporarily_unavailable');
      expect(api.body.error_description).toContain('busy with other sign-ins');
      const page = await third.request(`/interaction/${uids[2]}`, { headers: { accept: browserAccept } });
      expect(page.status).toBe(503);
      expect(page.headers.get('retry-after')).toBe('10');
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      expect(page.body).toContain('<h1>Briefly unavailable</h1>');
      expect(page.body).toContain('The gateway is busy with other sign-ins right now. Nothing is lost: your sign-in will continue where it stopped.');
      expect(await metric('gateway_flow_request_admissions_total', 'queue_full')).toBe(refusedBefore + 2);

      // The waiting request gives up after its queue time, with the same 503, while the turn is still held.
      const waited = await waiting;
      expect(waited.status).toBe(503);
      expect(waited.headers.get('retry-after')).toBe('10');
      expect(JSON.parse(waited.body)).toMatchObject({ error: 'temporarily_unavailable' });
      expect(await metric('gateway_flow_requests_waiting')).toBe(0);

      // The holder ends at its Temporal deadline (no worker), and frees the turn for the next request.
      expect((await holding).status).toBe(503);
      const after = await third.request(`/interaction/${uids[2]}`, { headers: { accept: browserAccept } });
      expect(after.status).toBe(200);
    });
  });
});

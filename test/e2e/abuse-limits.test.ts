import { randomUUID } from 'node:crypto';
import { WorkflowNotFoundError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../server/config.js';
import { consentWorkflowId, flowState } from '../../workflows/consent-flow/messages.js';
import { authorizationUrl, ConsentDriver, registerClient } from '../helpers/consent-driver.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { temporalUnavailable } from '../helpers/temporal.js';

const skip = Boolean(temporalUnavailable);
const redirectUri = 'http://127.0.0.1:9/callback';
const browserAccept = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';

/** `POST /reg` as a client behind the gateway's proxy would send it: the proxy appended `proxySaw`. */
async function register(gateway: TestGateway, forwardedFor: string, body: unknown = { redirect_uris: [redirectUri], token_endpoint_auth_method: 'none' }) {
  // The public URL is https (the proxy's side); the gateway itself listens on plain HTTP.
  const response = await fetch(`http://127.0.0.1:${gateway.config.http.port}/reg`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': forwardedFor, 'x-forwarded-proto': 'https' },
    body: JSON.stringify(body),
  });
  return { status: response.status, retryAfter: response.headers.get('retry-after'), body: (await response.json()) as { error?: string } };
}

/** Sends the authorization request; answers the driver's response and the interaction uid it leads to. */
async function authorize(driver: ConsentDriver, clientId: string, headers: Record<string, string> = {}) {
  const answer = await driver.request(authorizationUrl(driver.gatewayUrl, { clientId, redirectUri }), { headers });
  const uid = answer.location ? /^\/interaction\/([^/]+)$/.exec(answer.location.pathname)?.[1] : undefined;
  return { answer, uid };
}

async function workflowExists(gateway: TestGateway, uid: string): Promise<boolean> {
  try {
    await gateway.temporal.workflow.getHandle(consentWorkflowId(uid)).query(flowState);
    return true;
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return false;
    throw error;
  }
}

describe('trusted proxy hops', () => {
  it('reads the hop count from the environment and refuses one out of range', () => {
    expect(loadConfig({ env: { GATEWAY_TRUSTED_PROXY_HOPS: '2' } }).http.trustedProxyHops).toBe(2);
    expect(() => loadConfig({ env: { GATEWAY_TRUSTED_PROXY_HOPS: '-1' } })).toThrow('http.trustedProxyHops must be a whole number from 0 to 16');
  });
});

describe.skipIf(skip)('registration limit behind a proxy', () => {
  let gateway: TestGateway;

  beforeAll(async () => {
    gateway = await startTestGateway((config) => {
      config.http.publicUrl = `https://localhost:${config.http.port}`;
      config.http.trustedProxyHops = 1;
      config.oauth.registrationsPerMinute = 3;
      config.limits.trackedKeys = 20;
    });
  });

  afterAll(async () => {
    await gateway?.close();
  });

  it('keys on the address the proxy saw, whatever the client put left of it', async () => {
    const answers = [];
    for (let i = 0; i < 30; i += 1) answers.push(await register(gateway, `198.18.${i}.1, 203.0.113.50`));
    expect(answers.filter((answer) => answer.status === 201)).toHaveLength(3);
    const refused = answers.slice(3);
    expect(refused.every((answer) => answer.status === 429 && answer.body.error === 'temporarily_unavailable')).toBe(true);
    expect(Number(refused[0]?.retryAfter)).toBeGreaterThan(0);
    expect(Number(refused[0]?.retryAfter)).toBeLessThanOrEqual(60);
  });

  it('keeps a refused address refused after requests from more addresses than the table holds', async () => {
    for (let i = 0; i < 3; i += 1) expect((await register(gateway, '203.0.113.60')).status).toBe(201);
    expect((await register(gateway, '203.0.113.60')).status).toBe(429);
    // Cheap requests: each takes a hit, then fails validation without registering anything.
    for (let i = 0; i < 30; i += 1) expect((await register(gateway, `198.19.0.${i}`, { redirect_uris: 'not a list' })).status).not.toBe(500);
    expect((await register(gateway, '203.0.113.60')).status).toBe(429);
  });
});

describe.skipIf(skip)('authorization and consent page limits', () => {
  let gateway: TestGateway;

  beforeAll(async () => {
    gateway = await startTestGateway((config) => {
      config.http.trustedProxyHops = 1;
      config.limits.authorization = { perAddress: 4, perClient: 6 };
      config.limits.consentPage = { perAddress: 1_000, perClient: 1_000 };
      config.limits.pendingFlowsPerClient = 2;
    });
  });

  afterAll(async () => {
    await gateway?.close();
  });

  it('refuses /auth past the per-address limit with a readable 429 page and Retry-After', async () => {
    const clientId = await registerClient(gateway.url, [redirectUri]);
    const driver = new ConsentDriver(gateway.url);
    const from = { 'x-forwarded-for': '203.0.113.70', accept: browserAccept };
    for (let i = 0; i < 4; i += 1) expect((await authorize(driver, clientId, from)).answer.status).toBe(303);
    const { answer } = await authorize(driver, clientId, from);
    expect(answer.status).toBe(429);
    expect(Number(answer.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(answer.headers.get('content-type')).toMatch(/^text\/html/);
    expect(answer.body).toContain('<h1>Too many requests</h1>');
    expect(answer.body).toContain('Consent Gateway');

    const json = await driver.request(authorizationUrl(gateway.url, { clientId, redirectUri }), { headers: { 'x-forwarded-for': '203.0.113.70' } });
    expect(json.status).toBe(429);
    expect(JSON.parse(json.body)).toMatchObject({ error: 'temporarily_unavailable' });
  });

  it('refuses /auth past the per-client limit from any address', async () => {
    const clientId = await registerClient(gateway.url, [redirectUri]);
    const driver = new ConsentDriver(gateway.url);
    const statuses = [];
    for (let i = 0; i < 8; i += 1) statuses.push((await authorize(driver, clientId, { 'x-forwarded-for': `198.51.100.${i}` })).answer.status);
    expect(statuses).toEqual([303, 303, 303, 303, 303, 303, 429, 429]);
  });

  it('starts no workflow for a consent page opened without the authorization request’s cookie', async () => {
    const clientId = await registerClient(gateway.url, [redirectUri]);
    const { uid } = await authorize(new ConsentDriver(gateway.url), clientId, { 'x-forwarded-for': '203.0.113.80' });
    expect(uid).toBeTruthy();
    const page = await new ConsentDriver(gateway.url).open(uid ?? '');
    expect(page.status).toBe(403);
    expect(page.body).toContain('This sign-in request belongs to another browser');
    expect(await workflowExists(gateway, uid ?? '')).toBe(false);
  });

  it('caps the flows a client has pending; a reload of a started flow still works', async () => {
    const clientId = await registerClient(gateway.url, [redirectUri]);
    const uids: string[] = [];
    const drivers: ConsentDriver[] = [];
    for (let i = 0; i < 3; i += 1) {
      const driver = new ConsentDriver(gateway.url);
      const { uid } = await authorize(driver, clientId, { 'x-forwarded-for': `192.0.2.${i + 1}` });
      drivers.push(driver);
      uids.push(uid ?? '');
    }
    expect((await drivers[0]?.open(uids[0] ?? ''))?.status).toBe(200);
    expect((await drivers[1]?.open(uids[1] ?? ''))?.status).toBe(200);
    const third = await drivers[2]?.request(`/interaction/${uids[2]}`, { headers: { accept: browserAccept } });
    expect(third?.status).toBe(429);
    expect(Number(third?.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(third?.body).toContain('<h1>Too many requests</h1>');
    expect(await workflowExists(gateway, uids[2] ?? '')).toBe(false);
    expect(await workflowExists(gateway, uids[0] ?? '')).toBe(true);
    expect((await drivers[0]?.open(uids[0] ?? ''))?.status).toBe(200);
  });
});

describe.skipIf(skip)('consent page limit', () => {
  let gateway: TestGateway;

  beforeAll(async () => {
    gateway = await startTestGateway((config) => {
      config.limits.consentPage = { perAddress: 2, perClient: 1_000 };
    });
  });

  afterAll(async () => {
    await gateway?.close();
  });

  it('refuses consent page loads past the per-address limit with a 429 page, never a 500', async () => {
    const clientId = await registerClient(gateway.url, [redirectUri]);
    const driver = new ConsentDriver(gateway.url);
    const { uid } = await driver.start(authorizationUrl(gateway.url, { clientId, redirectUri, state: randomUUID() }));
    expect((await driver.open(uid)).status).toBe(200);
    const refused = await driver.request(`/interaction/${uid}`, { headers: { accept: browserAccept } });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(refused.body).toContain('Too many consent page loads from this address');
  });
});

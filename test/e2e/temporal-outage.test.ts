import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { loadTemporalDevSettings, startDevServer, type DevServer, type TemporalDevSettings } from '../../server/temporal/dev-server.js';
import { authorizationUrl, ConsentDriver, registerClient } from '../helpers/consent-driver.js';
import { freePort } from '../helpers/free-port.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { temporalUnavailable } from '../helpers/temporal.js';

const skip = Boolean(temporalUnavailable);
const redirectUri = 'http://127.0.0.1:9/callback';
const browserAccept = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';

/**
 * A gateway on a Temporal dev server of its own, which the test stops while a consent flow is open
 * and starts again on the same port and database.
 */
describe.skipIf(skip)('consent flows while Temporal is down', () => {
  let dir: string;
  let settings: TemporalDevSettings;
  let port: number;
  let temporal: DevServer | undefined;
  let gateway: TestGateway;
  let clientId: string;

  const startTemporal = async () => {
    temporal = await startDevServer({
      cliPath: inject('temporalCliPath'),
      settings,
      overrides: { port, dbFile: path.join(dir, 'temporal.db'), headless: true },
      logFile: path.join(dir, 'temporal.log'),
    });
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-outage-'));
    settings = await loadTemporalDevSettings();
    port = await freePort();
    await startTemporal();
    gateway = await startTestGateway((config) => {
      config.temporal.address = temporal?.address ?? '';
      config.temporal.namespace = settings.namespace;
      config.temporal.requestTimeoutMs = 1_500;
    });
    clientId = await registerClient(gateway.url, [redirectUri]);
  }, 120_000);

  afterAll(async () => {
    await gateway?.close();
    await temporal?.stop();
    await rm(dir, { recursive: true, force: true });
  }, 120_000);

  it('answers 503 pages and JSON with Retry-After while Temporal is down, and the flow continues after', async () => {
    const driver = new ConsentDriver(gateway.url);
    const { uid } = await driver.start(authorizationUrl(gateway.url, { clientId, redirectUri, state: randomUUID() }));
    const signedIn = await driver.post(uid, 'identity', { userId: `outage-${randomUUID()}` });
    expect(signedIn.status).toBe(200);
    expect(signedIn.body.step).toBe('services');

    await temporal?.stop();

    const page = await driver.request(`/interaction/${uid}`, { headers: { accept: browserAccept } });
    expect(page.status).toBe(503);
    expect(page.headers.get('retry-after')).toBe('2');
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.body).toContain('<h1>Briefly unavailable</h1>');
    expect(page.body).toContain('your sign-in will continue where it stopped');
    expect(page.body).toContain('<span>Consent Gateway</span>');

    const state = await driver.state(uid);
    expect(state.status).toBe(503);
    expect(state.headers.get('retry-after')).toBe('2');
    expect(state.body.error).toBe('temporarily_unavailable');

    const services = await driver.post(uid, 'services', { upstreams: [] });
    expect(services.status).toBe(503);
    expect(services.headers.get('retry-after')).toBe('2');
    expect(services.body.error).toBe('temporarily_unavailable');

    // A new authorization reaches its consent page, which cannot start the flow yet.
    const other = new ConsentDriver(gateway.url);
    const opened = await other.follow(authorizationUrl(gateway.url, { clientId, redirectUri, state: randomUUID() }));
    expect('stoppedAt' in opened && opened.response.status).toBe(503);

    await startTemporal();
    // The gateway's connection comes back after its reconnect backoff; the page's retry is this loop.
    let resumed = await driver.post(uid, 'services', { upstreams: [] });
    for (let attempt = 0; resumed.status === 503 && attempt < 60; attempt += 1) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      resumed = await driver.post(uid, 'services', { upstreams: [] });
    }
    expect(resumed.status).toBe(200);
    expect(resumed.body.step).toBe('approve');
  }, 120_000);
});

import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import type { Page } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { buildWeb } from '../../scripts/build-web.js';
import type { FlowView } from '../../server/views/consent.js';
import { consentStepTable } from '../../workflows/consent-flow/steps.js';
import { chromiumAvailable, chromiumPath, launchBrowser, type TestBrowser } from '../helpers/browser.js';

const inCi = process.env['CI'] === 'true';
// Outside CI a machine without Chromium skips these tests, loudly; in CI they run and fail.
const skipBrowserTests = !chromiumAvailable() && !inCi;
if (skipBrowserTests) console.warn(`\n*** SKIPPING cg-consent-app browser tests: no Chromium at ${chromiumPath()} ***\n`);

const FLOW_ID = 'flow-123';
const CSRF = 'csrf-token-abc';
const CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'";

/** One API request as the fake gateway received it. */
interface Call {
  method: string;
  path: string;
  csrf: string | undefined;
  contentType: string | undefined;
  body: unknown;
}

type Answer = { status: number; json: unknown };
type Handler = (op: string, body: unknown) => Answer;

/** A stand-in for the gateway's interaction routes: the page, the bundle, and a scripted JSON API. */
interface FakeGateway {
  url: string;
  calls: Call[];
  handle: Handler;
  close(): Promise<void>;
}

function view(overrides: Partial<FlowView> = {}): FlowView {
  return {
    flowId: FLOW_ID,
    step: 'identity',
    status: 'identifying',
    identityMode: 'dev',
    user: null,
    client: { clientId: 'client-42', clientName: 'MCP Inspector', redirectHost: 'localhost:6274', registration: 'dcr' },
    upstreams: [
      { name: 'demo', displayName: 'Demo tools', status: 'ready', authRequired: false, scopes: [] },
      { name: 'github', displayName: 'GitHub', status: 'not_connected', authRequired: true, scopes: ['repo'] },
      { name: 'notion', displayName: 'Notion', status: 'expired', authRequired: true, scopes: ['read_content'] },
      { name: 'linear', displayName: 'Linear', status: 'connected', authRequired: true, scopes: ['read', 'write'] },
    ],
    chosenUpstreams: [],
    scopes: ['mcp:tools'],
    expiresAt: new Date(Date.now() + 10 * 60_000).toISOString(),
    redirectTo: null,
    ...overrides,
  };
}

const ok = (json: unknown): Answer => ({ status: 200, json });
const fail = (status: number, error: string, description = ''): Answer => ({
  status,
  json: { error, error_description: description },
});

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text === '' ? undefined : (JSON.parse(text) as unknown);
}

async function startFakeGateway(assetsDir: string): Promise<FakeGateway> {
  const gateway: FakeGateway = {
    url: '',
    calls: [],
    handle: () => fail(500, 'server_error'),
    close: async () => {},
  };
  const send = (res: ServerResponse, status: number, type: string, body: string | Buffer) => {
    res.writeHead(status, { 'Content-Type': type, 'Content-Security-Policy': CSP });
    res.end(body);
  };
  const server: Server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname === `/interaction/${FLOW_ID}`) {
        return send(
          res,
          200,
          'text/html; charset=utf-8',
          `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Consent Gateway</title></head><body>
<cg-consent-app flow-id="${FLOW_ID}" csrf-token="${CSRF}" api-base="/interaction/${FLOW_ID}"></cg-consent-app>
<script type="module" src="/assets/consent-app.js"></script></body></html>`,
        );
      }
      if (url.pathname === '/assets/consent-app.js') {
        return send(res, 200, 'text/javascript; charset=utf-8', await readFile(path.join(assetsDir, 'consent-app.js')));
      }
      if (url.pathname === '/callback' || url.pathname === '/idp' || url.pathname === '/upstream-authorize') {
        return send(res, 200, 'text/html; charset=utf-8', `<!doctype html><title>Elsewhere</title><h1>Reached ${url.pathname}</h1>`);
      }
      const api = url.pathname.match(new RegExp(`^/interaction/${FLOW_ID}/(\\w+)$`));
      if (api?.[1]) {
        const body = await readBody(req);
        gateway.calls.push({
          method: req.method ?? '',
          path: url.pathname,
          csrf: req.headers['x-csrf-token'] as string | undefined,
          contentType: req.headers['content-type'],
          body,
        });
        const answer = gateway.handle(api[1], body);
        return send(res, answer.status, 'application/json', JSON.stringify(answer.json));
      }
      send(res, 404, 'text/plain', 'not found');
    })().catch((error: unknown) => send(res, 500, 'text/plain', String(error)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  gateway.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  gateway.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return gateway;
}

describe.skipIf(skipBrowserTests)('<cg-consent-app>', () => {
  let assetsDir: string;
  let gateway: FakeGateway;
  let browser: TestBrowser;
  let page: Page;
  let pageErrors: string[];

  beforeAll(async () => {
    assetsDir = await mkdtemp(path.join(tmpdir(), 'consent-app-'));
    await buildWeb({ outDir: assetsDir, minify: false });
    gateway = await startFakeGateway(assetsDir);
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await Promise.all([browser?.close(), gateway?.close()]);
    if (assetsDir) await rm(assetsDir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    gateway.calls.length = 0;
    const context = await browser.newContext();
    page = await context.newPage();
    pageErrors = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    return async () => {
      await context.close();
      expect(pageErrors).toEqual([]);
    };
  });

  const open = () => page.goto(`${gateway.url}/interaction/${FLOW_ID}`);
  const posts = () => gateway.calls.filter((call) => call.method === 'POST');

  it('walks a dev sign-in through services and approval to the redirect URI', async () => {
    let current = view();
    gateway.handle = (op, body) => {
      if (op === 'state') return ok(current);
      if (op === 'identity') current = view({ step: 'services', status: 'choosing_services', user: { id: 'alice' } });
      if (op === 'services') {
        current = { ...current, step: 'approve', status: 'awaiting_approval', chosenUpstreams: (body as { upstreams: string[] }).upstreams };
      }
      if (op === 'decision') current = { ...current, step: 'done', status: 'approved', redirectTo: `${gateway.url}/callback?code=c&state=s` };
      return ok(current);
    };
    await open();

    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await expect(page.title()).resolves.toBe('Sign in · Consent Gateway');
    await expect(page.getByText('Step 1 of 3').isVisible()).resolves.toBe(true);
    await expect(page.getByText('Development sign-in: anyone can sign in as anyone. Not for production.').isVisible()).resolves.toBe(true);
    await expect(page.getByText('MCP Inspector wants to use your connected services').isVisible()).resolves.toBe(true);
    await page.getByLabel('User name').fill('alice');
    await page.getByRole('button', { name: 'Continue' }).click();

    await page.getByRole('heading', { name: 'Choose services' }).waitFor();
    await expect(page.getByText('Step 2 of 3').isVisible()).resolves.toBe(true);
    await expect(page.getByText('Signed in as alice').isVisible()).resolves.toBe(true);
    await expect(page.getByRole('checkbox', { name: 'Demo tools' }).isChecked()).resolves.toBe(true);
    await expect(page.getByRole('checkbox', { name: 'Linear' }).isChecked()).resolves.toBe(true);
    await expect(page.getByRole('checkbox', { name: 'GitHub' }).isDisabled()).resolves.toBe(true);
    await expect(page.getByRole('checkbox', { name: 'Notion' }).isDisabled()).resolves.toBe(true);
    await expect(page.getByRole('button', { name: 'Connect GitHub' }).isVisible()).resolves.toBe(true);
    await expect(page.getByRole('button', { name: 'Reconnect Notion' }).isVisible()).resolves.toBe(true);
    await page.getByRole('checkbox', { name: 'Linear' }).uncheck();
    await page.getByRole('button', { name: 'Continue' }).click();

    await page.getByRole('heading', { name: 'Approve access' }).waitFor();
    await expect(page.getByText('Step 3 of 3').isVisible()).resolves.toBe(true);
    await expect(page.getByText('Allow MCP Inspector (localhost:6274) to use Demo tools as alice?').isVisible()).resolves.toBe(true);
    await expect(page.getByText('registered itself (dynamic registration)').isVisible()).resolves.toBe(true);
    await page.getByRole('button', { name: 'Approve' }).click();

    await page.waitForURL(`${gateway.url}/callback?code=c&state=s`);
    expect(posts().map(({ path: p, csrf, contentType, body }) => ({ path: p, csrf, contentType, body }))).toEqual([
      { path: `/interaction/${FLOW_ID}/identity`, csrf: CSRF, contentType: 'application/json', body: { userId: 'alice' } },
      { path: `/interaction/${FLOW_ID}/services`, csrf: CSRF, contentType: 'application/json', body: { upstreams: ['demo'] } },
      { path: `/interaction/${FLOW_ID}/decision`, csrf: CSRF, contentType: 'application/json', body: { decision: 'approve' } },
    ]);
    expect(gateway.calls[0]).toMatchObject({ method: 'GET', path: `/interaction/${FLOW_ID}/state`, csrf: undefined, body: undefined });
  });

  it('defines the screen element the step table names for every step', async () => {
    gateway.handle = () => ok(view());
    await open();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    const screens = consentStepTable.map((row) => row.screen);
    await expect(page.evaluate((names) => names.filter((name) => customElements.get(name) === undefined), screens)).resolves.toEqual([]);
  });

  it('keeps "Continue" disabled until a user name is typed, then submits on Enter', async () => {
    gateway.handle = (op) => (op === 'state' ? ok(view()) : ok(view({ step: 'services', status: 'choosing_services', user: { id: 'bob' } })));
    await open();

    const input = page.getByLabel('User name');
    await input.waitFor();
    const focused = await input.evaluate((element) => {
      let active = document.activeElement;
      while (active?.shadowRoot?.activeElement) active = active.shadowRoot.activeElement;
      return active === element;
    });
    expect(focused).toBe(true);
    await expect(page.getByRole('button', { name: 'Continue' }).isDisabled()).resolves.toBe(true);
    await input.press('Enter');
    await input.fill('  bob ');
    await input.press('Enter');

    await page.getByRole('heading', { name: 'Choose services' }).waitFor();
    expect(posts().map((call) => call.body)).toEqual([{ userId: 'bob' }]);
  });

  it('posts {} in oidc mode and follows the identity provider URL', async () => {
    gateway.handle = (op) => (op === 'state' ? ok(view({ identityMode: 'oidc' })) : ok({ redirectTo: `${gateway.url}/idp?x=1` }));
    await open();

    await expect(page.getByText("Sign in with your organisation's account").isVisible()).resolves.toBe(true);
    await page.getByRole('button', { name: 'Continue' }).click();

    await page.waitForURL(`${gateway.url}/idp?x=1`);
    expect(posts().map(({ path: p, body }) => ({ path: p, body }))).toEqual([{ path: `/interaction/${FLOW_ID}/identity`, body: {} }]);
  });

  it('asks the gateway to connect an upstream and follows its authorization URL', async () => {
    gateway.handle = (op) =>
      op === 'state'
        ? ok(view({ step: 'services', status: 'choosing_services', user: { id: 'alice' } }))
        : ok({ redirectTo: `${gateway.url}/upstream-authorize?client_id=gw` });
    await open();

    await page.getByRole('button', { name: 'Connect GitHub' }).click();

    await page.waitForURL(`${gateway.url}/upstream-authorize?client_id=gw`);
    expect(posts().map(({ path: p, csrf, body }) => ({ path: p, csrf, body }))).toEqual([
      { path: `/interaction/${FLOW_ID}/connect`, csrf: CSRF, body: { upstream: 'github' } },
    ]);
  });

  it('shows the error of a refused connect and stays on the services step', async () => {
    gateway.handle = (op) =>
      op === 'state'
        ? ok(view({ step: 'services', status: 'choosing_services', user: { id: 'alice' } }))
        : fail(400, 'invalid_request', 'Notion is not configured for reconnection.');
    await open();

    await page.getByRole('button', { name: 'Reconnect Notion' }).click();

    await expect(page.getByRole('alert').textContent()).resolves.toContain('Notion is not configured for reconnection.');
    await expect(page.getByRole('heading', { name: 'Choose services' }).isVisible()).resolves.toBe(true);
  });

  it('re-reads the state after 409 invalid_transition and renders where the flow is', async () => {
    const approve = view({ step: 'approve', status: 'awaiting_approval', user: { id: 'alice' }, chosenUpstreams: ['demo'] });
    let moved = false;
    gateway.handle = (op) => {
      if (op === 'state') return ok(moved ? approve : view({ step: 'services', status: 'choosing_services', user: { id: 'alice' } }));
      moved = true;
      return fail(409, 'invalid_transition', 'The flow is at approve.');
    };
    await open();

    await page.getByRole('button', { name: 'Continue' }).click();

    await page.getByRole('heading', { name: 'Approve access' }).waitFor();
    expect(gateway.calls.map((call) => `${call.method} ${call.path}`)).toEqual([
      `GET /interaction/${FLOW_ID}/state`,
      `POST /interaction/${FLOW_ID}/services`,
      `GET /interaction/${FLOW_ID}/state`,
    ]);
  });

  it('shows the expired message on 410', async () => {
    gateway.handle = (op) =>
      op === 'state' ? ok(view({ step: 'approve', status: 'awaiting_approval', user: { id: 'alice' }, chosenUpstreams: ['demo'] })) : fail(410, 'expired', 'Gone.');
    await open();

    await page.getByRole('button', { name: 'Deny' }).click();

    await page.getByRole('heading', { name: 'Request expired' }).waitFor();
    await expect(page.getByText('This sign-in request has expired. Go back to your application and try again.').isVisible()).resolves.toBe(true);
    await expect(page.getByRole('button').count()).resolves.toBe(0);
  });

  it('offers "Try again" after a network failure and recovers', async () => {
    gateway.handle = () => ok(view());
    await page.route('**/state', (route) => route.abort('connectionrefused'));
    await open();

    await page.getByRole('button', { name: 'Try again' }).waitFor();
    await page.unroute('**/state');
    await page.getByRole('button', { name: 'Try again' }).click();

    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  });

  it('says the flow belongs elsewhere on 403, with nothing to press', async () => {
    gateway.handle = () => fail(403, 'access_denied', 'This flow belongs to another browser.');
    await open();

    await page.getByRole('heading', { name: "Can't continue here" }).waitFor();
    await expect(page.getByText('This flow belongs to another browser.').isVisible()).resolves.toBe(true);
    await expect(page.getByRole('button').count()).resolves.toBe(0);
  });

  it('returns a denial to the client', async () => {
    let current = view({ step: 'approve', status: 'awaiting_approval', user: { id: 'alice' }, chosenUpstreams: ['demo', 'linear'] });
    gateway.handle = (op) => {
      if (op === 'decision') current = { ...current, step: 'done', status: 'denied', redirectTo: `${gateway.url}/callback?error=access_denied` };
      return ok(current);
    };
    await open();

    await expect(page.getByText('Allow MCP Inspector (localhost:6274) to use Demo tools and Linear as alice?').isVisible()).resolves.toBe(true);
    await page.getByRole('button', { name: 'Deny' }).click();

    await page.waitForURL(`${gateway.url}/callback?error=access_denied`);
    expect(posts().map((call) => call.body)).toEqual([{ decision: 'deny' }]);
  });

  it('tells the user to close the window when the flow is done without a redirect', async () => {
    gateway.handle = () => ok(view({ step: 'done', status: 'approved', user: { id: 'alice' } }));
    await open();

    await page.getByRole('heading', { name: 'Access approved' }).waitFor();
    await expect(page.getByText('You can close this window.').isVisible()).resolves.toBe(true);
  });
});

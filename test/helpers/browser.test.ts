import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import * as oauth from 'oauth4webapi';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { chromiumAvailable, chromiumPath, launchBrowser, type TestBrowser } from './browser.js';
import { startFakeUpstream, type FakeUpstream } from './fake-upstream.js';

const inCi = process.env['CI'] === 'true';
// Outside CI a machine without Chromium skips these tests, loudly; in CI they run and fail.
const skipBrowserTests = !chromiumAvailable() && !inCi;
if (skipBrowserTests) {
  console.warn(
    `\n*** SKIPPING browser tests: no Chromium at ${chromiumPath()} (apt-get install -y chromium, or set CHROMIUM_PATH) ***\n`,
  );
}

const insecure = { [oauth.allowInsecureRequests]: true } as const;

interface CallbackServer {
  url: string;
  close(): Promise<void>;
}

/** The client's redirect URI: a loopback page that only says it was reached. */
async function startCallbackServer(): Promise<CallbackServer> {
  const server: Server = createServer((_req, res) => {
    res.setHeader('Content-Type', 'text/html; charset=utf-8');
    res.end('<!doctype html><title>Callback</title><h1>Callback received</h1>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/callback`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface PendingAuthorization {
  url: URL;
  state: string;
  verifier: string;
}

async function pendingAuthorization(
  upstream: FakeUpstream,
  clientId: string,
  redirectUri: string,
): Promise<PendingAuthorization> {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const url = new URL(upstream.authorizationEndpoint);
  url.search = new URLSearchParams({
    client_id: clientId,
    redirect_uri: redirectUri,
    response_type: 'code',
    scope: upstream.scopes.join(' '),
    resource: upstream.mcpUrl,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  }).toString();
  return { url, state, verifier };
}

describe.skipIf(skipBrowserTests)('chromiumAvailable', () => {
  it('finds an executable Chromium at chromiumPath()', () => {
    expect(chromiumAvailable(), `no Chromium at ${chromiumPath()}`).toBe(true);
  });
});

describe.skipIf(skipBrowserTests)('launchBrowser', () => {
  let browser: TestBrowser;
  let callback: CallbackServer;

  beforeAll(async () => {
    browser = await launchBrowser();
    callback = await startCallbackServer();
  });
  afterAll(async () => {
    await Promise.all([browser?.close(), callback?.close()]);
  });

  describe('with a github-like upstream', () => {
    let github: FakeUpstream;

    beforeEach(async () => {
      github = await startFakeUpstream({ preset: 'github', redirectUris: [callback.url] });
    });
    afterEach(async () => {
      await github.close();
    });

    it('signs in with the "Sign in" button and lands on the redirect URI with a usable code', async () => {
      if (!github.clientId || !github.clientSecret) throw new Error('no static client');
      const pending = await pendingAuthorization(github, github.clientId, callback.url);
      const page = await browser.newPage();

      await page.goto(pending.url.href);
      await page.getByLabel('User name').fill('grace');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL((url) => url.href.startsWith(callback.url));

      const landed = new URL(page.url());
      expect(landed.searchParams.get('code')).toMatch(/^[\w-]{20,}$/);
      expect(landed.searchParams.get('state')).toBe(pending.state);
      expect(landed.searchParams.get('iss')).toBe(github.issuer);
      expect(await page.getByRole('heading').textContent()).toBe('Callback received');

      const as = await oauth.processDiscoveryResponse(
        new URL(github.issuer),
        await oauth.discoveryRequest(new URL(github.issuer), { algorithm: 'oauth2', ...insecure }),
      );
      const client = { client_id: github.clientId };
      const params = oauth.validateAuthResponse(as, client, landed, pending.state);
      const tokens = await oauth.processAuthorizationCodeResponse(
        as,
        client,
        await oauth.authorizationCodeGrantRequest(
          as,
          client,
          oauth.ClientSecretPost(github.clientSecret),
          params,
          callback.url,
          pending.verifier,
          insecure,
        ),
      );
      const whoami = await fetch(github.mcpUrl, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${tokens.access_token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {} } }),
      });
      expect(await whoami.json()).toEqual({
        jsonrpc: '2.0',
        id: 1,
        result: { content: [{ type: 'text', text: 'grace' }] },
      });
      await page.close();
    });
  });

  describe('with a notion-like upstream', () => {
    let notion: FakeUpstream;
    let clientId: string;

    beforeEach(async () => {
      notion = await startFakeUpstream({ preset: 'notion' });
      const registration = await fetch(notion.registrationEndpoint ?? '', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ redirect_uris: [callback.url], token_endpoint_auth_method: 'none' }),
      });
      clientId = ((await registration.json()) as { client_id: string }).client_id;
    });
    afterEach(async () => {
      await notion.close();
    });

    it('keeps the sign-in of one context away from another context', async () => {
      const page = await browser.newPage();
      await page.goto((await pendingAuthorization(notion, clientId, callback.url)).url.href);
      await page.getByLabel('User name').fill('ada');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL((url) => url.href.startsWith(callback.url));

      const samePage = await browser.newPage();
      await samePage.goto((await pendingAuthorization(notion, clientId, callback.url)).url.href);
      const other = await browser.newContext();
      const otherPage = await other.newPage();
      await otherPage.goto((await pendingAuthorization(notion, clientId, callback.url)).url.href);

      expect(new URL(samePage.url()).searchParams.get('code')).toMatch(/^[\w-]{20,}$/);
      expect(new URL(otherPage.url()).pathname).toMatch(/^\/interaction\//);
      await expect(otherPage.getByRole('button', { name: 'Sign in' }).isVisible()).resolves.toBe(true);
      await Promise.all([page.close(), samePage.close(), other.close()]);
    });
  });
});

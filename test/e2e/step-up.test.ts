import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoUpstream, type DemoUpstream } from '../../server/demo/demo-upstream.js';
import { authorizationUrl, ConsentDriver, createPkce, postForm, registerClient } from '../helpers/consent-driver.js';
import { chromiumAvailable, launchBrowser } from '../helpers/browser.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startCallbackServer } from '../helpers/mcp-client.js';
import { temporalUnavailable } from '../helpers/temporal.js';

const modern = '2026-07-28';
const redirectUri = 'http://127.0.0.1:9/callback';

/** A 2026-07-28 `tools/call` on `path` with its Mcp-Method and Mcp-Name headers. */
async function callTool(gatewayUrl: string, path: string, accessToken: string, tool: string, args: Record<string, unknown> = { text: 'hello' }) {
  const response = await fetch(`${gatewayUrl}${path}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${accessToken}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': modern,
      'mcp-method': 'tools/call',
      'mcp-name': tool,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: {
        name: tool,
        arguments: args,
        _meta: { 'io.modelcontextprotocol/protocolVersion': modern, 'io.modelcontextprotocol/clientInfo': { name: 'step-up-test', version: '1' }, 'io.modelcontextprotocol/clientCapabilities': {} },
      },
    }),
  });
  const body = await response.text();
  return { status: response.status, challenge: response.headers.get('www-authenticate') ?? '', body };
}

/**
 * A 2025-11-25 `tools/call` on `path` after an `initialize` of its own: the tool's name is in the body only
 * (no Mcp-Name header in that era). Answers the call's status, challenge and body.
 */
async function callToolIn2025(gatewayUrl: string, path: string, accessToken: string, tool: string, args: Record<string, unknown>) {
  const legacy = '2025-11-25';
  const headers: Record<string, string> = { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  const post = (body: unknown, extra: Record<string, string> = {}) => fetch(`${gatewayUrl}${path}`, { method: 'POST', headers: { ...headers, ...extra }, body: JSON.stringify(body) });
  const initialized = await post({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: legacy, capabilities: {}, clientInfo: { name: 'step-up-test', version: '1' } } });
  await initialized.text();
  const sessionId = initialized.headers.get('mcp-session-id');
  expect(initialized.status).toBe(200);
  // The aggregate endpoint holds a session; a stateless upstream behind /mcp/<upstream> gives none.
  const session: Record<string, string> = { 'mcp-protocol-version': legacy, ...(sessionId ? { 'mcp-session-id': sessionId } : {}) };
  await (await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, session)).text();
  const response = await post({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: tool, arguments: args } }, session);
  return { status: response.status, challenge: response.headers.get('www-authenticate') ?? '', body: await response.text() };
}

/**
 * One authorization in `driver`'s browser: signs in as `user` unless the browser already is,
 * chooses every offered upstream (or `choose`), approves, and exchanges the code. Returns the
 * upstreams the flow offered and those its approve screen listed, and the token.
 */
async function authorize(driver: ConsentDriver, gatewayUrl: string, options: { clientId: string; scope: string; user: string; resource?: string; choose?: string[] }) {
  const pkce = createPkce();
  const resource = options.resource ?? `${gatewayUrl}/mcp`;
  const { uid } = await driver.start(authorizationUrl(gatewayUrl, { clientId: options.clientId, redirectUri, pkce, scope: options.scope, resource }));
  let state = await driver.state(uid);
  if (state.body.step === 'identity') state = await driver.post(uid, 'identity', { userId: options.user });
  expect(state.status, JSON.stringify(state.body)).toBe(200);
  const offered = state.body.upstreams.map((upstream) => upstream.name);
  const services = await driver.post(uid, 'services', { upstreams: options.choose ?? offered });
  expect(services.status, JSON.stringify(services.body)).toBe(200);
  let approveScreen: string[] | null = null;
  let approveScopes: string[] | null = null;
  let redirectTo = services.body.redirectTo;
  if (!redirectTo) {
    approveScreen = services.body.upstreams.filter((upstream) => services.body.chosenUpstreams.includes(upstream.name)).map((upstream) => upstream.name);
    approveScopes = services.body.scopes;
    const decided = await driver.post(uid, 'decision', { decision: 'approve' });
    expect(decided.status, JSON.stringify(decided.body)).toBe(200);
    redirectTo = decided.body.redirectTo;
  }
  const back = await driver.followToClient(redirectTo!);
  const code = back.searchParams.get('code');
  expect(code, back.href).toBeTruthy();
  const token = await postForm(gatewayUrl, '/token', { grant_type: 'authorization_code', code: code!, code_verifier: pkce.verifier, redirect_uri: redirectUri, client_id: options.clientId, resource });
  expect(token.status, JSON.stringify(token.body)).toBe(200);
  return { offered, approveScreen, approveScopes, accessToken: token.body.access_token!, scope: token.body.scope };
}

describe.skipIf(Boolean(temporalUnavailable))('step-up with scope accumulation (SEP-2350)', () => {
  let alpha: DemoUpstream;
  let beta: DemoUpstream;
  let gateway: TestGateway;

  beforeAll(async () => {
    alpha = await startDemoUpstream({ host: '127.0.0.1', port: 0 });
    beta = await startDemoUpstream({ host: '127.0.0.1', port: 0 });
    gateway = await startTestGateway((config) => {
      config.upstreams = [
        // Alpha's `add` needs a tool scope of its own; its other tools need only the upstream.
        { name: 'alpha', displayName: 'Alpha', mcpUrl: alpha.url, auth: { type: 'none' }, scopes: [], toolScopes: { add: ['mcp:upstream:alpha:write'] } },
        { name: 'beta', displayName: 'Beta', mcpUrl: beta.url, auth: { type: 'none' }, scopes: [] },
      ];
    });
  });

  afterAll(async () => {
    await gateway?.close();
    await alpha?.close();
    await beta?.close();
  });

  it("a tool of an upstream outside the token's grant gets 403 naming the accumulated set; re-authorizing with it asks only about the new upstream, and the new token carries the union", async () => {
    const clientId = await registerClient(gateway.url, [redirectUri], 'Step-up client');
    const driver = new ConsentDriver(gateway.url);
    const first = await authorize(driver, gateway.url, { clientId, scope: 'mcp:tools mcp:upstream:alpha', user: 'stepper' });
    expect(first.offered).toEqual(['alpha']);
    expect(first.scope?.split(' ').sort()).toEqual(['mcp:tools', 'mcp:upstream:alpha']);
    expect((await callTool(gateway.url, '/mcp', first.accessToken, 'alpha__echo')).status).toBe(200);

    const refused = await callTool(gateway.url, '/mcp', first.accessToken, 'beta__echo');
    expect(refused.status).toBe(403);
    expect(refused.challenge).toContain('error="insufficient_scope"');
    const challenged = /scope="([^"]*)"/.exec(refused.challenge)?.[1];
    expect(challenged).toBe('mcp:tools mcp:upstream:alpha mcp:upstream:beta');

    // The same browser asks again with the challenged set: only beta is new, so only beta is asked about.
    const second = await authorize(driver, gateway.url, { clientId, scope: challenged!, user: 'stepper' });
    expect(second.offered).toEqual(['beta']);
    expect(second.approveScreen).toEqual(['beta']);
    expect(second.scope?.split(' ').sort()).toEqual(['mcp:tools', 'mcp:upstream:alpha', 'mcp:upstream:beta']);
    expect((await gateway.store.getConsent('stepper', clientId))?.upstreams.sort()).toEqual(['alpha', 'beta']);

    const called = await callTool(gateway.url, '/mcp', second.accessToken, 'beta__echo');
    expect(called.status, called.body).toBe(200);
    expect(called.body).toContain('hello');
    expect((await callTool(gateway.url, '/mcp', second.accessToken, 'alpha__echo')).status).toBe(200);
    // The first token still reaches what it was granted, no more.
    expect((await callTool(gateway.url, '/mcp', first.accessToken, 'beta__echo')).status).toBe(403);
  });

  it.skipIf(!chromiumAvailable() && process.env.CI !== 'true')('in the browser: the approve screen of the step-up shows only the new upstream', async () => {
    const browser = await launchBrowser();
    const callback = await startCallbackServer();
    try {
      const clientId = await registerClient(gateway.url, [callback.url], 'Browser step-up client');
      const page = await (await browser.newContext()).newPage();
      const signIn = async (scope: string) => {
        const pkce = createPkce();
        await page.goto(authorizationUrl(gateway.url, { clientId, redirectUri: callback.url, pkce, scope }).href);
        return pkce;
      };
      const exchange = async (pkce: { verifier: string }) => {
        await page.waitForURL((url) => url.href.startsWith(callback.url));
        const result = await callback.next();
        expect(result.error).toBeNull();
        const token = await postForm(gateway.url, '/token', { grant_type: 'authorization_code', code: result.code!, code_verifier: pkce.verifier, redirect_uri: callback.url, client_id: clientId, resource: `${gateway.url}/mcp` });
        return token.body.access_token!;
      };

      const firstPkce = await signIn('mcp:tools mcp:upstream:alpha');
      await page.getByRole('heading', { name: 'Sign in' }).waitFor();
      await page.getByLabel('User name').fill('browser-stepper');
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByRole('heading', { name: 'Choose services' }).waitFor();
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByRole('heading', { name: 'Approve access' }).waitFor();
      // Text inside the components' shadow roots: getByText pierces them.
      expect(await page.getByText('Alpha scopes').count()).toBe(1);
      expect(await page.getByText('Beta scopes').count()).toBe(0);
      await page.getByRole('button', { name: 'Approve' }).click();
      const first = await exchange(firstPkce);

      const refused = await callTool(gateway.url, '/mcp', first, 'beta__echo');
      expect(refused.status).toBe(403);
      const challenged = /scope="([^"]*)"/.exec(refused.challenge)?.[1];
      expect(challenged).toBe('mcp:tools mcp:upstream:alpha mcp:upstream:beta');

      // The same browser, already signed in, asks for the challenged set.
      const secondPkce = await signIn(challenged!);
      await page.getByRole('heading', { name: 'Choose services' }).waitFor();
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByRole('heading', { name: 'Approve access' }).waitFor();
      expect(await page.getByText('Beta scopes').count()).toBe(1);
      expect(await page.getByText('Alpha scopes').count()).toBe(0);
      await page.getByRole('button', { name: 'Approve' }).click();
      const second = await exchange(secondPkce);
      expect((await callTool(gateway.url, '/mcp', second, 'beta__echo')).status).toBe(200);
      expect((await callTool(gateway.url, '/mcp', second, 'alpha__echo')).status).toBe(200);
    } finally {
      await callback.close();
      await browser.close();
    }
  });

  it('a token for /mcp/<upstream> the user did not grant the client gets 403 insufficient_scope naming that upstream', async () => {
    const clientId = await registerClient(gateway.url, [redirectUri], 'Declining client');
    const driver = new ConsentDriver(gateway.url);
    const resource = `${gateway.url}/mcp/beta`;
    const declined = await authorize(driver, gateway.url, { clientId, scope: 'mcp:tools', user: 'decliner', resource, choose: [] });
    const refused = await callTool(gateway.url, '/mcp/beta', declined.accessToken, 'echo');
    expect(refused.status).toBe(403);
    expect(refused.challenge).toContain('error="insufficient_scope"');
    expect(refused.challenge).toContain('scope="mcp:tools mcp:upstream:beta"');
    expect(refused.challenge).toContain(`resource_metadata="${gateway.url}/.well-known/oauth-protected-resource/mcp/beta"`);

    const granted = await authorize(driver, gateway.url, { clientId, scope: 'mcp:tools mcp:upstream:beta', user: 'decliner', resource });
    expect(granted.offered).toEqual(['beta']);
    expect((await callTool(gateway.url, '/mcp/beta', granted.accessToken, 'echo')).status).toBe(200);
  });

  it('a tool with toolScopes called with a token without its scope gets 403 naming the accumulated set (2026 by header, 2025 from the body); the step-up consent names the scope, and the new token calls it', async () => {
    const clientId = await registerClient(gateway.url, [redirectUri], 'Tool scope client');
    const driver = new ConsentDriver(gateway.url);
    const first = await authorize(driver, gateway.url, { clientId, scope: 'mcp:tools mcp:upstream:alpha mcp:upstream:beta', user: 'toolsy' });
    expect(first.approveScopes).toEqual(['mcp:tools']);
    expect(first.scope?.split(' ').sort()).toEqual(['mcp:tools', 'mcp:upstream:alpha', 'mcp:upstream:beta']);
    expect((await callTool(gateway.url, '/mcp', first.accessToken, 'alpha__echo')).status).toBe(200);

    const expected = 'mcp:tools mcp:upstream:alpha mcp:upstream:beta mcp:upstream:alpha:write';
    // The tool scope is advertised where the resource reaches Alpha.
    const supported = async (path: string) => ((await (await fetch(`${gateway.url}/.well-known/oauth-protected-resource${path}`)).json()) as { scopes_supported: string[] }).scopes_supported;
    expect(await supported('/mcp')).toEqual(['mcp:tools', 'mcp:upstream:alpha:write']);
    expect(await supported('/mcp/alpha')).toEqual(['mcp:tools', 'mcp:upstream:alpha:write']);
    expect(await supported('/mcp/beta')).toEqual(['mcp:tools']);
    const refused = await callTool(gateway.url, '/mcp', first.accessToken, 'alpha__add', { a: 2, b: 3 });
    expect(refused.status, refused.body).toBe(403);
    expect(refused.challenge).toContain('error="insufficient_scope"');
    expect(refused.challenge).toContain(`resource_metadata="${gateway.url}/.well-known/oauth-protected-resource/mcp"`);
    expect(/scope="([^"]*)"/.exec(refused.challenge)?.[1]).toBe(expected);
    const refusedIn2025 = await callToolIn2025(gateway.url, '/mcp', first.accessToken, 'alpha__add', { a: 2, b: 3 });
    expect(refusedIn2025.status, refusedIn2025.body).toBe(403);
    expect(/scope="([^"]*)"/.exec(refusedIn2025.challenge)?.[1]).toBe(expected);

    // Re-authorizing with the challenged set asks only about Alpha and names the new scope.
    const second = await authorize(driver, gateway.url, { clientId, scope: expected, user: 'toolsy' });
    expect(second.offered).toEqual(['alpha']);
    expect(second.approveScreen).toEqual(['alpha']);
    expect(second.approveScopes).toEqual(['mcp:tools', 'mcp:upstream:alpha:write']);
    expect(second.scope?.split(' ').sort()).toEqual(['mcp:tools', 'mcp:upstream:alpha', 'mcp:upstream:alpha:write', 'mcp:upstream:beta']);
    expect((await gateway.store.getConsent('toolsy', clientId))?.scopes.sort()).toEqual(['mcp:tools', 'mcp:upstream:alpha:write']);
    const called = await callTool(gateway.url, '/mcp', second.accessToken, 'alpha__add', { a: 2, b: 3 });
    expect(called.status, called.body).toBe(200);
    expect(called.body).toContain('5');
    const calledIn2025 = await callToolIn2025(gateway.url, '/mcp', second.accessToken, 'alpha__add', { a: 2, b: 3 });
    expect(calledIn2025.status, calledIn2025.body).toBe(200);
    expect(calledIn2025.body).toContain('5');
    expect((await callTool(gateway.url, '/mcp', second.accessToken, 'beta__echo')).status).toBe(200);
    // The first token still lacks it.
    expect((await callTool(gateway.url, '/mcp', first.accessToken, 'alpha__add', { a: 2, b: 3 })).status).toBe(403);

    // Asked again for what the user already approved: no approve screen, the same scopes.
    const third = await authorize(driver, gateway.url, { clientId, scope: expected, user: 'toolsy' });
    expect(third.approveScreen).toBeNull();
    expect(third.scope?.split(' ').sort()).toEqual(['mcp:tools', 'mcp:upstream:alpha', 'mcp:upstream:alpha:write', 'mcp:upstream:beta']);
  });

  it('on /mcp/<upstream> the tool is named as the upstream names it: 403 naming the tool scope, then granted through the consent flow', async () => {
    const clientId = await registerClient(gateway.url, [redirectUri], 'Tool scope endpoint client');
    const driver = new ConsentDriver(gateway.url);
    const resource = `${gateway.url}/mcp/alpha`;
    const first = await authorize(driver, gateway.url, { clientId, scope: 'mcp:tools mcp:upstream:alpha', user: 'endpointer', resource });
    expect((await callTool(gateway.url, '/mcp/alpha', first.accessToken, 'echo')).status).toBe(200);
    for (const refused of [await callTool(gateway.url, '/mcp/alpha', first.accessToken, 'add', { a: 1, b: 1 }), await callToolIn2025(gateway.url, '/mcp/alpha', first.accessToken, 'add', { a: 1, b: 1 })]) {
      expect(refused.status, refused.body).toBe(403);
      expect(refused.challenge).toContain('error="insufficient_scope"');
      expect(refused.challenge).toContain(`resource_metadata="${gateway.url}/.well-known/oauth-protected-resource/mcp/alpha"`);
      expect(refused.challenge).toContain('scope="mcp:tools mcp:upstream:alpha mcp:upstream:alpha:write"');
    }
    const second = await authorize(driver, gateway.url, { clientId, scope: 'mcp:tools mcp:upstream:alpha mcp:upstream:alpha:write', user: 'endpointer', resource });
    expect(second.approveScopes).toEqual(['mcp:tools', 'mcp:upstream:alpha:write']);
    const called = await callTool(gateway.url, '/mcp/alpha', second.accessToken, 'add', { a: 1, b: 1 });
    expect(called.status, called.body).toBe(200);
    expect(called.body).toContain('2');
  });
});

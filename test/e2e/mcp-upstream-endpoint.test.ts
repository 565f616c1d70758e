import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as LegacyTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConformanceUpstream, type ConformanceUpstream } from '../helpers/conformance-upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { obtainGatewayToken, type GatewayTokens } from '../helpers/gateway-token.js';
import { authorizationUrl, ConsentDriver, createPkce, registerClient } from '../helpers/consent-driver.js';
import { freePort } from '../helpers/free-port.js';
import { temporalUnavailable } from '../helpers/temporal.js';

const modern = '2026-07-28';
const jsonHeaders = (token: string, extra: Record<string, string> = {}) => ({
  authorization: `Bearer ${token}`,
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  ...extra,
});
const modernMeta = (capabilities: object = {}) => ({
  'io.modelcontextprotocol/protocolVersion': modern,
  'io.modelcontextprotocol/clientInfo': { name: 'raw-test', version: '1' },
  'io.modelcontextprotocol/clientCapabilities': capabilities,
});

/** Reads a JSON or single-event SSE answer as its JSON-RPC message. */
async function jsonRpcOf(response: Response): Promise<Record<string, unknown>> {
  const text = await response.text();
  if (!(response.headers.get('content-type') ?? '').includes('text/event-stream')) return JSON.parse(text) as Record<string, unknown>;
  const data = text
    .split('\n')
    .filter((line) => line.startsWith('data:'))
    .map((line) => JSON.parse(line.slice(5)) as Record<string, unknown>)
    .find((message) => 'result' in message || 'error' in message);
  if (!data) throw new Error(`no JSON-RPC answer in the stream: ${text.slice(0, 300)}`);
  return data;
}

describe.skipIf(Boolean(temporalUnavailable))('/mcp/<upstream>: one upstream, names untouched, its own protected resource', () => {
  let gateway: TestGateway;
  let fixture: ConformanceUpstream;
  let alice: GatewayTokens;
  let bob: GatewayTokens;
  let aggregate: GatewayTokens;
  let broken: HttpServer;

  beforeAll(async () => {
    fixture = await startConformanceUpstream({ name: 'fixture-upstream' });
    broken = createServer((_req, res) => res.writeHead(500, { 'content-type': 'text/html' }).end('<h1>Internal Server Error</h1>'));
    await new Promise<void>((resolve) => broken.listen(0, '127.0.0.1', resolve));
    const unreachable = `http://127.0.0.1:${await freePort()}`;
    gateway = await startTestGateway((config) => {
      config.upstreams = [
        { name: 'fixture', displayName: 'Fixture', mcpUrl: fixture.url, auth: { type: 'none' }, scopes: [] },
        { name: 'broken', displayName: 'Broken', mcpUrl: `http://127.0.0.1:${(broken.address() as AddressInfo).port}/mcp`, auth: { type: 'none' }, scopes: [] },
        // Needs each user's OAuth connection, which nobody has here: calls are answered with a connect link.
        {
          name: 'github',
          displayName: 'GitHub',
          mcpUrl: `${unreachable}/mcp`,
          auth: { type: 'oauth', issuer: unreachable, client: { kind: 'static', clientId: 'gw', authMethod: 'none' }, resource: true },
          scopes: [],
        },
      ];
    });
    [alice, bob, aggregate] = await Promise.all([
      obtainGatewayToken(gateway.url, { user: 'upstream-endpoint-alice', resource: `${gateway.url}/mcp/fixture` }),
      obtainGatewayToken(gateway.url, { user: 'upstream-endpoint-bob', resource: `${gateway.url}/mcp/fixture` }),
      obtainGatewayToken(gateway.url, { user: 'upstream-endpoint-carol', resource: `${gateway.url}/mcp`, upstreams: ['fixture'] }),
    ]);
  });

  afterAll(async () => {
    await gateway?.close();
    await fixture?.close();
    broken?.close();
  });

  it("answers an upstream's own error page with a JSON-RPC error naming it, with the request's id", async () => {
    const { accessToken } = await obtainGatewayToken(gateway.url, { user: 'upstream-endpoint-frank', resource: `${gateway.url}/mcp/broken` });
    const answer = await fetch(`${gateway.url}/mcp/broken`, {
      method: 'POST',
      headers: jsonHeaders(accessToken),
      body: JSON.stringify({ jsonrpc: '2.0', id: 41, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
    });
    expect(answer.status).toBe(502);
    expect(await answer.json()).toEqual({ jsonrpc: '2.0', error: { code: -32000, message: 'Upstream "Broken" (broken) answered HTTP 500' }, id: 41 });
  });

  it('publishes protected resource metadata at the path-inserted URL and names it in the 401 challenge', async () => {
    const metadata = await fetch(`${gateway.url}/.well-known/oauth-protected-resource/mcp/fixture`);
    expect(metadata.status).toBe(200);
    expect(await metadata.json()).toMatchObject({ resource: `${gateway.url}/mcp/fixture`, authorization_servers: [gateway.url] });
    const refused = await fetch(`${gateway.url}/mcp/fixture`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toContain(`resource_metadata="${gateway.url}/.well-known/oauth-protected-resource/mcp/fixture"`);
    expect((await fetch(`${gateway.url}/.well-known/oauth-protected-resource/mcp/nope`)).status).toBe(404);
  });

  it('offers only that upstream in the consent flow of its resource', async () => {
    const clientId = await registerClient(gateway.url, ['http://127.0.0.1:9/callback']);
    const driver = new ConsentDriver(gateway.url);
    const { uid } = await driver.start(
      authorizationUrl(gateway.url, { clientId, redirectUri: 'http://127.0.0.1:9/callback', pkce: createPkce(), resource: `${gateway.url}/mcp/github` }),
    );
    const identity = await driver.post(uid, 'identity', { userId: 'upstream-endpoint-dave' });
    expect(identity.status).toBe(200);
    expect(identity.body.upstreams.map((upstream) => upstream.name)).toEqual(['github']);
    const services = await driver.post(uid, 'services', { upstreams: ['fixture'] });
    expect(services.status).toBe(400);
  });

  it('refuses a token bound to another endpoint, both ways', async () => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' });
    const onUpstream = await fetch(`${gateway.url}/mcp/fixture`, { method: 'POST', headers: jsonHeaders(aggregate.accessToken), body });
    expect(onUpstream.status).toBe(401);
    expect(((await onUpstream.json()) as { error_description: string }).error_description).toContain('another resource');
    const onAggregate = await fetch(`${gateway.url}/mcp`, { method: 'POST', headers: jsonHeaders(alice.accessToken), body });
    expect(onAggregate.status).toBe(401);
    const unknown = await fetch(`${gateway.url}/mcp/nope`, { method: 'POST', headers: jsonHeaders(alice.accessToken), body });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32000 }, id: null });
  });

  it('serves a 2025 client (SDK 1.x): tools, resources and prompts under their own names', async () => {
    const client = new LegacyClient({ name: 'legacy-client', version: '1.0.0' });
    await client.connect(new LegacyTransport(new URL(`${gateway.url}/mcp/fixture`), { requestInit: { headers: { authorization: `Bearer ${alice.accessToken}` } } }));
    try {
      expect(client.getServerVersion()?.name).toBe('fixture-upstream');
      const tools = await client.listTools();
      expect(tools.tools.map((tool) => tool.name)).toContain('test_simple_text');
      const called = await client.callTool({ name: 'test_simple_text', arguments: {} });
      expect(called.content).toEqual([expect.objectContaining({ type: 'text' })]);
      const resources = await client.listResources();
      const text = resources.resources.find((resource) => resource.uri === 'test://static-text');
      expect(text).toBeDefined();
      const read = await client.readResource({ uri: 'test://static-text' });
      expect(read.contents[0]).toMatchObject({ uri: 'test://static-text' });
      const prompts = await client.listPrompts();
      expect(prompts.prompts.map((prompt) => prompt.name)).toContain('test_simple_prompt');
      const prompt = await client.getPrompt({ name: 'test_simple_prompt' });
      expect(prompt.messages.length).toBeGreaterThan(0);
    } finally {
      await client.close();
    }
  });

  it('serves a 2026-07-28 client (SDK v2) with no session', async () => {
    const client = new Client({ name: 'modern-client', version: '1.0.0' }, { versionNegotiation: { mode: { pin: modern } } });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp/fixture`), { requestInit: { headers: { authorization: `Bearer ${alice.accessToken}` } } }));
    try {
      const tools = await client.listTools();
      expect(tools.tools.map((tool) => tool.name)).toContain('test_simple_text');
      const called = await client.callTool({ name: 'test_simple_text', arguments: {} });
      expect(called.content).toEqual([expect.objectContaining({ type: 'text' })]);
      const read = await client.readResource({ uri: 'test://static-text' });
      expect(read.contents[0]).toMatchObject({ uri: 'test://static-text' });
      const prompt = await client.getPrompt({ name: 'test_simple_prompt' });
      expect(prompt.messages.length).toBeGreaterThan(0);
    } finally {
      await client.close();
    }
  });

  it("refuses a session id presented by another user, and one not issued by the gateway", async () => {
    const initialize = await fetch(`${gateway.url}/mcp/fixture`, {
      method: 'POST',
      headers: jsonHeaders(alice.accessToken),
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
    });
    expect(initialize.status).toBe(200);
    const sessionId = initialize.headers.get('mcp-session-id');
    expect(sessionId).toBeTruthy();
    await jsonRpcOf(initialize);
    const list = (token: string, session: string) =>
      fetch(`${gateway.url}/mcp/fixture`, {
        method: 'POST',
        headers: jsonHeaders(token, { 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' }),
        body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list' }),
      });
    const own = await list(alice.accessToken, sessionId!);
    expect(own.status).toBe(200);
    expect((await jsonRpcOf(own)).result).toBeDefined();
    const stolen = await list(bob.accessToken, sessionId!);
    expect(stolen.status).toBe(404);
    expect(await stolen.json()).toEqual({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: 7 });
    const bare = await list(alice.accessToken, sessionId!.slice(0, sessionId!.lastIndexOf('.')));
    expect(bare.status).toBe(404);
  });

  it('refuses foreign Host and Origin headers (DNS rebinding) and oversized bodies', async () => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
    const port = new URL(gateway.url).port;
    const { request } = await import('node:http');
    const withHost = (host: string, path = '/mcp/fixture', token = alice.accessToken) =>
      new Promise<number>((resolve, reject) => {
        const sent = request(`${gateway.url}${path}`, { method: 'POST', headers: { ...jsonHeaders(token), host } }, (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        });
        sent.on('error', reject);
        sent.end(body);
      });
    expect(await withHost('evil.example.com')).toBe(403);
    expect(await withHost(`evil.example.com:${port}`)).toBe(403);
    expect(await withHost(`localhost:${port}`)).toBe(200);
    expect(await withHost('evil.example.com', '/mcp', aggregate.accessToken)).toBe(403);
    expect(await withHost(`127.0.0.1:${port}`, '/mcp', aggregate.accessToken)).toBe(200);
    const foreignOrigin = await fetch(`${gateway.url}/mcp/fixture`, { method: 'POST', headers: jsonHeaders(alice.accessToken, { origin: 'http://evil.example.com' }), body });
    expect(foreignOrigin.status).toBe(403);
    expect(await foreignOrigin.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32000 } });
    const aggregateForeign = await fetch(`${gateway.url}/mcp`, { method: 'POST', headers: jsonHeaders(aggregate.accessToken, { origin: 'http://evil.example.com' }), body });
    expect(aggregateForeign.status).toBe(403);
    const loopbackOrigin = await fetch(`${gateway.url}/mcp/fixture`, { method: 'POST', headers: jsonHeaders(alice.accessToken, { origin: 'http://localhost:6274' }), body });
    expect(loopbackOrigin.status).toBe(200);
    const huge = await fetch(`${gateway.url}/mcp/fixture`, {
      method: 'POST',
      headers: jsonHeaders(alice.accessToken),
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping', params: { padding: 'x'.repeat(gateway.config.mcp.maxBodyBytes) } }),
    });
    expect(huge.status).toBe(413);
  });

  it('checks Mcp-Method and Mcp-Name against the body of a 2026-07-28 request (HeaderMismatch)', async () => {
    const call = { jsonrpc: '2.0', id: 11, method: 'tools/call', params: { name: 'test_simple_text', arguments: {}, _meta: modernMeta() } };
    const send = (headers: Record<string, string>) =>
      fetch(`${gateway.url}/mcp/fixture`, { method: 'POST', headers: jsonHeaders(alice.accessToken, { 'mcp-protocol-version': modern, ...headers }), body: JSON.stringify(call) });
    const mismatched = await send({ 'mcp-method': 'tools/call', 'mcp-name': 'other_tool' });
    expect(mismatched.status).toBe(400);
    expect(await mismatched.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32020 }, id: 11 });
    const missing = await send({ 'mcp-name': 'test_simple_text' });
    expect(missing.status).toBe(400);
    const matching = await send({ 'mcp-method': ' tools/call ', 'mcp-name': 'test_simple_text' });
    expect(matching.status).toBe(200);
    expect((await jsonRpcOf(matching)).result).toMatchObject({ content: [expect.objectContaining({ type: 'text' })] });
  });

  it('answers a call to an unconnected upstream with a connect link: -32042 on 2025, an input request on 2026-07-28', async () => {
    const [githubToken] = await Promise.all([obtainGatewayToken(gateway.url, { user: 'upstream-endpoint-erin', resource: `${gateway.url}/mcp/github` })]);
    const legacy = await fetch(`${gateway.url}/mcp/github`, {
      method: 'POST',
      headers: jsonHeaders(githubToken!.accessToken),
      body: JSON.stringify({ jsonrpc: '2.0', id: 21, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
    });
    const legacyAnswer = (await legacy.json()) as { id: number; error: { code: number; data: { elicitations: { mode: string; url: string }[] } } };
    expect(legacyAnswer.id).toBe(21);
    expect(legacyAnswer.error.code).toBe(-32042);
    expect(legacyAnswer.error.data.elicitations[0]).toMatchObject({ mode: 'url', url: expect.stringContaining(`${gateway.url}/connect?elicitationId=`) });

    const call = (params: Record<string, unknown>) =>
      fetch(`${gateway.url}/mcp/github`, {
        method: 'POST',
        headers: jsonHeaders(githubToken!.accessToken, { 'mcp-protocol-version': modern, 'mcp-method': 'tools/call', 'mcp-name': 'list_repos' }),
        body: JSON.stringify({ jsonrpc: '2.0', id: 22, method: 'tools/call', params: { name: 'list_repos', arguments: {}, _meta: modernMeta({ elicitation: { url: {} } }), ...params } }),
      });
    const first = (await (await call({})).json()) as { id: number; result: { resultType: string; inputRequests: Record<string, { method: string; params: { mode: string; url: string } }>; requestState: string } };
    expect(first.id).toBe(22);
    expect(first.result.resultType).toBe('input_required');
    const [request] = Object.values(first.result.inputRequests);
    expect(request).toMatchObject({ method: 'elicitation/create', params: { mode: 'url', url: expect.stringContaining('/connect?elicitationId=') } });
    const tampered = (await (await call({ requestState: `${first.result.requestState}x`, inputResponses: {} })).json()) as { error: { code: number } };
    expect(tampered.error.code).toBe(-32602);
    // Still not connected: the retry is asked again rather than sent to the upstream.
    const again = (await (await call({ requestState: first.result.requestState, inputResponses: { [Object.keys(first.result.inputRequests)[0]!]: { action: 'accept' } } })).json()) as { result: { resultType: string } };
    expect(again.result.resultType).toBe('input_required');
  });
});

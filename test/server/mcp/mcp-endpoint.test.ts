import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, LATEST_PROTOCOL_VERSION, McpError, ToolListChangedNotificationSchema, type Progress } from '@modelcontextprotocol/sdk/types.js';
import Koa from 'koa';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';

import { startDemoUpstream, type DemoUpstream } from '../../../server/demo/demo-upstream.js';
import { createLogger } from '../../../server/log.js';
import { createMcpEndpoint, type McpCaller, type McpEndpoint, type McpEndpointOptions, type McpUpstream } from '../../../server/mcp/endpoint.js';
import { errorHandler } from '../../../server/middleware/errors.js';
import { freePort } from '../../helpers/free-port.js';
import { startConformanceUpstream } from '../../helpers/conformance-upstream.js';
import { CONNECT_URL, startNotesUpstream, type NotesUpstream } from './notes-upstream.js';

const GATEWAY_TOKEN = 'Bearer gateway-token-must-stay-here';
const MAX_BODY_BYTES = 64 * 1024;
/** A request's session is unknown: the error carries the id of a POSTed request, null for a GET or DELETE. */
const SESSION_NOT_FOUND = { jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null };

let demo: DemoUpstream;
let notes: NotesUpstream;
let upstreams: { demo: McpUpstream; notes: McpUpstream; down: McpUpstream };

beforeAll(async () => {
  [demo, notes] = await Promise.all([startDemoUpstream(), startNotesUpstream()]);
  upstreams = {
    demo: { name: 'demo', displayName: 'Demo', url: demo.url },
    notes: { name: 'notes', displayName: 'Notes', url: notes.url },
    // Nothing listens here: a port that was free a moment ago.
    down: { name: 'down', displayName: 'Offline Service', url: `http://127.0.0.1:${await freePort()}/mcp` },
  };
});

afterAll(async () => {
  await Promise.all([demo?.close(), notes?.close()]);
});

interface Gateway {
  url: string;
  endpoint: McpEndpoint;
  logged: string[];
  /** The upstreams each user may use; tests change it to simulate connecting or revoking. */
  upstreamsOf: Map<string, McpUpstream[]>;
  /** GET requests to /mcp in flight (the standalone SSE streams). */
  openStreams(): number;
  close(): Promise<void>;
}

const gateways: Gateway[] = [];
const clients: Client[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) await client.close();
  for (const gateway of gateways.splice(0)) await gateway.close();
});

/**
 * A Koa app with the endpoint behind a stand-in for the token layer: `X-Test-User` and
 * `X-Test-Client` say who calls.
 */
async function startGateway(overrides: Partial<McpEndpointOptions> = {}): Promise<Gateway> {
  const logged: string[] = [];
  const log = createLogger('debug', (line) => logged.push(line));
  const upstreamsOf = new Map<string, McpUpstream[]>();
  const endpoint = createMcpEndpoint({
    log,
    maxBodyBytes: MAX_BODY_BYTES,
    upstreamHeaders: (caller, upstream): Record<string, string> =>
      upstream.name === 'notes' ? { 'X-Upstream-User': caller.userId, Authorization: `Bearer notes-token-for-${caller.userId}` } : {},
    ...overrides,
  });
  let openStreams = 0;
  const app = new Koa();
  app.silent = true;
  app.use(errorHandler(log));
  app.use(async function testIdentity(ctx, next) {
    const userId = ctx.get('x-test-user');
    if (ctx.path === '/mcp-without-auth') return endpoint.middleware(ctx, next);
    if (ctx.path !== '/mcp') return next();
    if (!userId) {
      ctx.status = 401;
      ctx.body = { error: 'invalid_token' };
      return;
    }
    const caller: McpCaller = {
      userId,
      clientId: ctx.get('x-test-client') || 'client-a',
      upstreams: upstreamsOf.get(userId) ?? [upstreams.demo, upstreams.notes],
    };
    ctx.state['caller'] = caller;
    if (ctx.method === 'GET') {
      openStreams += 1;
      ctx.res.once('close', () => (openStreams -= 1));
    }
    await endpoint.middleware(ctx, next);
  });
  const server: HttpServer = await new Promise((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  const gateway: Gateway = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    endpoint,
    logged,
    upstreamsOf,
    openStreams: () => openStreams,
    async close() {
      await endpoint.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
  gateways.push(gateway);
  return gateway;
}

async function connect(gateway: Gateway, user = 'alice', clientId = 'client-a'): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(gateway.url), {
    requestInit: { headers: { 'X-Test-User': user, 'X-Test-Client': clientId, Authorization: GATEWAY_TOKEN } },
  });
  const client = new Client({ name: 'endpoint-test', version: '1.0.0' });
  await client.connect(transport);
  clients.push(client);
  return { client, transport };
}

function text(result: unknown): string {
  const { content } = result as { content: Array<{ type: string; text?: string }> };
  const [first] = content;
  if (first?.type !== 'text' || first.text === undefined) throw new Error(`expected text content, got ${JSON.stringify(content)}`);
  return first.text;
}

async function rawPost(gateway: Gateway, body: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(gateway.url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', 'X-Test-User': 'alice', ...headers },
    body,
  });
}

const ping = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'ping' });

describe('tools/list', () => {
  it('lists the tools of every upstream the caller may use, prefixed, with descriptions and schemas unchanged', async () => {
    const gateway = await startGateway();
    const { client } = await connect(gateway);

    const direct = new Client({ name: 'direct', version: '1.0.0' });
    await direct.connect(new StreamableHTTPClientTransport(new URL(demo.url)));
    clients.push(direct);
    const demoTools = (await direct.listTools()).tools;

    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual([
      'demo__add',
      'demo__current_time',
      'demo__echo',
      'demo__get_request_info',
      'notes__count_to',
      'notes__needs_connect',
      'notes__reverse',
      'notes__whoami',
    ]);
    for (const tool of demoTools) {
      expect(tools.find((listed) => listed.name === `demo__${tool.name}`)).toEqual({ ...tool, name: `demo__${tool.name}` });
    }
  });

  it('uses the configured separator', async () => {
    const gateway = await startGateway({ separator: '.' });
    const { client } = await connect(gateway);
    const names = (await client.listTools()).tools.map((tool) => tool.name);
    expect(names).toContain('demo.echo');
    expect(names).toContain('notes.reverse');
    expect(await client.callTool({ name: 'notes.reverse', arguments: { text: 'abc' } })).toEqual({ content: [{ type: 'text', text: 'cba' }] });
  });

  it('leaves out an unreachable upstream, logs a warning naming it, and lists the others', async () => {
    const gateway = await startGateway();
    gateway.upstreamsOf.set('dave', [upstreams.demo, upstreams.down, upstreams.notes]);
    const { client } = await connect(gateway, 'dave');
    const names = (await client.listTools()).tools.map((tool) => tool.name);
    expect(names).toContain('demo__echo');
    expect(names).toContain('notes__reverse');
    expect(names.filter((name) => name.startsWith('down__'))).toEqual([]);
    expect(gateway.logged.some((line) => line.includes('WARN  upstream left out of tools/list') && line.includes('upstream=down') && line.includes('userId=dave'))).toBe(true);
  });

  it('lists nothing for a caller with no upstreams', async () => {
    const gateway = await startGateway();
    gateway.upstreamsOf.set('erin', []);
    const { client } = await connect(gateway, 'erin');
    expect((await client.listTools()).tools).toEqual([]);
  });
});

describe('tools/call', () => {
  it('reaches the upstream that owns the tool and returns its result', async () => {
    const gateway = await startGateway();
    const { client } = await connect(gateway);
    expect(await client.callTool({ name: 'demo__add', arguments: { a: 40, b: 2 } })).toEqual({
      content: [{ type: 'text', text: '42' }],
      structuredContent: { sum: 42 },
    });
    expect(await client.callTool({ name: 'notes__reverse', arguments: { text: 'gateway' } })).toEqual({ content: [{ type: 'text', text: 'yawetag' }] });
  });

  it("returns an upstream's isError result unchanged", async () => {
    const gateway = await startGateway();
    const { client } = await connect(gateway);
    const result = await client.callTool({ name: 'demo__current_time', arguments: { timeZone: 'Nowhere/Land' } });
    expect(result).toEqual({
      isError: true,
      content: [{ type: 'text', text: 'Unknown time zone "Nowhere/Land"; use an IANA name such as "Europe/Paris".' }],
    });
  });

  it('answers an unknown tool with InvalidParams and a clear message', async () => {
    const gateway = await startGateway();
    const { client } = await connect(gateway);
    for (const name of ['echo', 'nope__echo', 'demo__', 'down__anything']) {
      const error = await client.callTool({ name, arguments: {} }).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(McpError);
      expect((error as McpError).code).toBe(ErrorCode.InvalidParams);
      expect((error as McpError).message).toBe(
        `MCP error -32602: Unknown tool: ${name}. Tool names have the form <upstream>__<tool>; tools/list shows the tools available to you.`,
      );
    }
  });

  it("relays an upstream's JSON-RPC error, such as a URL elicitation, with its code and data", async () => {
    const gateway = await startGateway();
    const { client } = await connect(gateway);
    const direct = new Client({ name: 'direct', version: '1.0.0' });
    await direct.connect(new StreamableHTTPClientTransport(new URL(notes.url)));
    clients.push(direct);
    const failing = (from: Client, name: string) =>
      from.callTool({ name, arguments: {} }).then(
        () => undefined,
        (caught: unknown) => caught as McpError,
      );

    const relayed = await failing(client, 'notes__needs_connect');
    const original = await failing(direct, 'needs_connect');

    expect(relayed).toBeInstanceOf(McpError);
    expect(relayed?.code).toBe(ErrorCode.UrlElicitationRequired);
    expect(relayed?.data).toEqual({ elicitations: [{ mode: 'url', elicitationId: 'e-1', url: CONNECT_URL, message: 'Connect Notes first.' }] });
    // The SDK's McpServer puts its "MCP error <code>:" prefix on the wire; the gateway adds none.
    expect(relayed?.message).toBe(original?.message);
  });

  it('answers a call to an unreachable upstream with an isError result naming it, and the others keep working', async () => {
    const gateway = await startGateway();
    gateway.upstreamsOf.set('dave', [upstreams.demo, upstreams.down, upstreams.notes]);
    const { client } = await connect(gateway, 'dave');
    const result = await client.callTool({ name: 'down__anything', arguments: {} });
    expect(result).toEqual({
      isError: true,
      content: [{ type: 'text', text: 'Upstream "Offline Service" (down) is unavailable: it could not be reached.' }],
    });
    expect(await client.callTool({ name: 'demo__echo', arguments: { text: 'still here' } })).toEqual({ content: [{ type: 'text', text: 'still here' }] });
    expect(gateway.logged.some((line) => line.includes('WARN  upstream tools/call failed') && line.includes('upstream=down'))).toBe(true);
  });

  it('answers with an isError result when upstreamHeaders throws, without its message', async () => {
    const gateway = await startGateway({
      upstreamHeaders: () => {
        throw new Error('vault sealed: token row 17 unreadable');
      },
    });
    const { client } = await connect(gateway);
    const result = await client.callTool({ name: 'notes__reverse', arguments: { text: 'x' } });
    expect(result).toEqual({ isError: true, content: [{ type: 'text', text: 'Upstream "Notes" (notes) is unavailable: no credentials are available for it.' }] });
  });

  it('sends the upstreamHeaders to the upstream, and never the MCP client\'s own token', async () => {
    const gateway = await startGateway();
    const { client } = await connect(gateway, 'carol');
    const before = notes.requests.length;
    expect(text(await client.callTool({ name: 'notes__whoami', arguments: {} }))).toBe('carol');
    const seen = notes.requests.slice(before);
    expect(seen.length).toBeGreaterThan(0);
    for (const request of seen) {
      expect(request.authorization).toBe('Bearer notes-token-for-carol');
      expect(request.upstreamUser).toBe('carol');
    }
    const info = await client.callTool({ name: 'demo__get_request_info', arguments: {} });
    expect(info.structuredContent).toMatchObject({ authorization: 'absent' });
  });

  it('forwards progress notifications from the upstream to the client', async () => {
    const gateway = await startGateway();
    const { client } = await connect(gateway);
    const progress: Progress[] = [];
    const result = await client.callTool({ name: 'notes__count_to', arguments: { n: 3 } }, undefined, { onprogress: (p) => progress.push(p) });
    expect(result).toEqual({ content: [{ type: 'text', text: 'counted to 3' }] });
    expect(progress).toEqual([
      { progress: 1, total: 3, message: 'at 1' },
      { progress: 2, total: 3, message: 'at 2' },
      { progress: 3, total: 3, message: 'at 3' },
    ]);
  });

  it('reconnects once when the upstream has forgotten its session', async () => {
    const gateway = await startGateway();
    const { client } = await connect(gateway);
    await client.callTool({ name: 'notes__reverse', arguments: { text: 'one' } });
    const opened = notes.counters.opened;
    await notes.forgetSessions();
    expect(await client.callTool({ name: 'notes__reverse', arguments: { text: 'two' } })).toEqual({ content: [{ type: 'text', text: 'owt' }] });
    expect(notes.counters.opened).toBe(opened + 1);
  });
});

describe('sessions', () => {
  it('keeps one upstream connection per session and upstream, opened on first use', async () => {
    const gateway = await startGateway();
    const opened = notes.counters.opened;
    const { client } = await connect(gateway);
    expect(notes.counters.opened).toBe(opened);
    await client.callTool({ name: 'notes__reverse', arguments: { text: 'a' } });
    await client.callTool({ name: 'notes__reverse', arguments: { text: 'b' } });
    await client.listTools();
    expect(notes.counters.opened).toBe(opened + 1);
  });

  it('refuses a session id presented by another user with 404 Session not found', async () => {
    const gateway = await startGateway();
    const { client, transport } = await connect(gateway, 'alice');
    const response = await rawPost(gateway, ping, { 'X-Test-User': 'mallory', 'Mcp-Session-Id': transport.sessionId!, 'Mcp-Protocol-Version': LATEST_PROTOCOL_VERSION });
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ ...SESSION_NOT_FOUND, id: 7 });
    expect(gateway.logged.some((line) => line.includes('WARN  mcp session presented by another identity') && line.includes('userId=mallory'))).toBe(true);
    expect(await client.ping()).toEqual({});
  });

  it('refuses a session id presented by another client of the same user with 404', async () => {
    const gateway = await startGateway();
    const { transport } = await connect(gateway, 'alice', 'client-a');
    const response = await rawPost(gateway, ping, { 'X-Test-Client': 'client-b', 'Mcp-Session-Id': transport.sessionId! });
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ ...SESSION_NOT_FOUND, id: 7 });
  });

  it('refuses GET and DELETE with another user\'s session id with 404, and the session survives', async () => {
    const gateway = await startGateway();
    const { client, transport } = await connect(gateway, 'alice');
    for (const method of ['GET', 'DELETE']) {
      const response = await fetch(gateway.url, { method, headers: { Accept: 'text/event-stream', 'X-Test-User': 'mallory', 'Mcp-Session-Id': transport.sessionId! } });
      expect(response.status).toBe(404);
      expect(await response.json()).toEqual(SESSION_NOT_FOUND);
    }
    expect(gateway.endpoint.sessionCount()).toBe(1);
    expect(await client.ping()).toEqual({});
  });

  it('answers an unknown session id with the same 404', async () => {
    const gateway = await startGateway();
    const response = await rawPost(gateway, ping, { 'Mcp-Session-Id': '9b1c8f5e-0000-4000-8000-000000000000' });
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ ...SESSION_NOT_FOUND, id: 7 });
  });

  it('answers a request without session id that is not initialize with 400', async () => {
    const gateway = await startGateway();
    const response = await rawPost(gateway, ping);
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ jsonrpc: '2.0', error: { code: -32000, message: 'Bad Request: Mcp-Session-Id header is required' }, id: 7 });
    expect(gateway.endpoint.sessionCount()).toBe(0);
  });

  it('ends the session on DELETE and closes its upstream connections', async () => {
    const gateway = await startGateway();
    const { client, transport } = await connect(gateway);
    await client.callTool({ name: 'notes__reverse', arguments: { text: 'x' } });
    const deleted = notes.counters.deleted;
    const live = notes.liveSessions();
    expect(gateway.endpoint.sessionCount()).toBe(1);

    await transport.terminateSession();

    expect(gateway.endpoint.sessionCount()).toBe(0);
    expect(notes.counters.deleted).toBe(deleted + 1);
    expect(notes.liveSessions()).toBe(live - 1);
  });

  it('does not keep a session whose initialize the transport refused', async () => {
    const gateway = await startGateway();
    const initialize = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'x', version: '1' } },
    });
    const response = await rawPost(gateway, initialize, { Accept: 'application/json' });
    expect(response.status).toBe(406);
    expect(gateway.endpoint.sessionCount()).toBe(0);
  });

  it('ends a session left idle without DELETE', async () => {
    const gateway = await startGateway({ sessionIdleTimeoutMs: 50 });
    const { client } = await connect(gateway);
    await client.callTool({ name: 'notes__reverse', arguments: { text: 'x' } });
    const deleted = notes.counters.deleted;
    await vi.waitFor(() => expect(gateway.openStreams()).toBe(1));
    // Closing the SDK client drops its SSE stream but sends no DELETE.
    await client.close();
    await vi.waitFor(() => expect(gateway.endpoint.sessionCount()).toBe(0));
    await vi.waitFor(() => expect(notes.counters.deleted).toBe(deleted + 1));
  });

  it('keeps a session whose stream stays open past the idle timeout, and ends it once that stream closed', async () => {
    const gateway = await startGateway({ sessionIdleTimeoutMs: 50 });
    const { client } = await connect(gateway);
    await client.callTool({ name: 'notes__reverse', arguments: { text: 'x' } });
    await vi.waitFor(() => expect(gateway.openStreams()).toBe(1));
    // Several idle timeouts pass while the client's stream is open: the session is in use, not idle.
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(gateway.endpoint.sessionCount()).toBe(1);
    await client.close();
    await vi.waitFor(() => expect(gateway.endpoint.sessionCount()).toBe(0));
  });

  it('close() ends every session and upstream connection, then refuses requests with 503', async () => {
    const gateway = await startGateway();
    const first = await connect(gateway, 'alice');
    const second = await connect(gateway, 'bob');
    await first.client.callTool({ name: 'notes__reverse', arguments: { text: 'x' } });
    await second.client.callTool({ name: 'notes__reverse', arguments: { text: 'y' } });
    const deleted = notes.counters.deleted;
    expect(gateway.endpoint.sessionCount()).toBe(2);

    await gateway.endpoint.close();

    expect(gateway.endpoint.sessionCount()).toBe(0);
    expect(notes.counters.deleted).toBe(deleted + 2);
    const response = await rawPost(gateway, ping, { 'Mcp-Session-Id': first.transport.sessionId! });
    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({ jsonrpc: '2.0', error: { code: -32000, message: 'Service Unavailable: the server is shutting down' }, id: null });
  });

  it('announces a change of the caller\'s upstreams with tools/list_changed and closes the dropped connection', async () => {
    const gateway = await startGateway();
    const { client } = await connect(gateway);
    let changes = 0;
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
      changes += 1;
    });
    await client.callTool({ name: 'notes__reverse', arguments: { text: 'x' } });
    const deleted = notes.counters.deleted;
    await vi.waitFor(() => expect(gateway.openStreams()).toBe(1));

    gateway.upstreamsOf.set('alice', [upstreams.demo]);
    await client.ping();

    await vi.waitFor(() => expect(changes).toBe(1));
    await vi.waitFor(() => expect(notes.counters.deleted).toBe(deleted + 1));
    expect((await client.listTools()).tools.map((tool) => tool.name).every((name) => name.startsWith('demo__'))).toBe(true);
    const error = await client.callTool({ name: 'notes__reverse', arguments: { text: 'x' } }).catch((caught: unknown) => caught);
    expect((error as McpError).code).toBe(ErrorCode.InvalidParams);
  });
});

describe('HTTP edge', () => {
  it('answers bad JSON with 400 and a JSON-RPC parse error', async () => {
    const gateway = await startGateway();
    const response = await rawPost(gateway, '{"jsonrpc": "2.0", "id": 1, "method": ');
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ jsonrpc: '2.0', error: { code: -32700, message: 'Parse error: Invalid JSON' }, id: null });
  });

  it('answers bad JSON inside a session with the same 400', async () => {
    const gateway = await startGateway();
    const { transport } = await connect(gateway);
    const response = await rawPost(gateway, 'not json', { 'Mcp-Session-Id': transport.sessionId! });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ jsonrpc: '2.0', error: { code: -32700, message: 'Parse error: Invalid JSON' }, id: null });
  });

  it('answers a body over the limit with 413', async () => {
    const gateway = await startGateway();
    const response = await rawPost(gateway, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { pad: 'x'.repeat(MAX_BODY_BYTES) } }));
    expect(response.status).toBe(413);
    expect(await response.json()).toEqual({
      jsonrpc: '2.0',
      error: { code: -32000, message: `Payload Too Large: Request body must not exceed ${MAX_BODY_BYTES} bytes` },
      id: null,
    });
  });

  it('answers a body that is not JSON by type with 415', async () => {
    const gateway = await startGateway();
    const response = await rawPost(gateway, ping, { 'Content-Type': 'text/plain' });
    expect(response.status).toBe(415);
    expect((await response.json()).error.code).toBe(-32000);
  });

  it('answers other methods with 405 and Allow', async () => {
    const gateway = await startGateway();
    const response = await fetch(gateway.url, { method: 'PUT', headers: { 'X-Test-User': 'alice' } });
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('GET, POST, DELETE');
    expect(await response.json()).toEqual({ jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed.' }, id: null });
  });

  it('fails closed with a server_error when mounted without an auth layer', async () => {
    const gateway = await startGateway();
    const response = await fetch(gateway.url.replace(/\/mcp$/, '/mcp-without-auth'), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: ping });
    expect(response.status).toBe(500);
    expect(await response.json()).toEqual({ error: 'server_error', error_description: 'the gateway could not handle this request; it has been logged' });
    expect(gateway.endpoint.sessionCount()).toBe(0);
  });
});

/** Opens a 2025 session by hand for a client that can answer elicitations; returns the headers of its requests. */
async function openRawSession(gateway: Gateway): Promise<Record<string, string>> {
  const initialize = await rawPost(
    gateway,
    JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: { elicitation: {} }, clientInfo: { name: 'raw', version: '1' } } }),
  );
  const sessionId = initialize.headers.get('mcp-session-id')!;
  await initialize.text();
  const inSession = { 'Mcp-Session-Id': sessionId, 'Mcp-Protocol-Version': LATEST_PROTOCOL_VERSION };
  await (await rawPost(gateway, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), inSession)).text();
  return inSession;
}

describe('request ids, cancellation and session limits', () => {
  it('refuses a second request whose id is still in progress in the same session, and accepts it once the first ended', async () => {
    // The first call waits for the user: the upstream's elicitation, which the client never answers.
    const fixture = await startConformanceUpstream();
    onTestFinished(() => fixture.close());
    const gateway = await startGateway();
    gateway.upstreamsOf.set('alice', [{ name: 'fixture', displayName: 'Fixture', url: fixture.url }]);
    const inSession = await openRawSession(gateway);
    const call = JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'fixture__test_elicitation', arguments: { message: 'Who are you?' } } });
    const first = await rawPost(gateway, call, inSession);
    expect(first.status).toBe(200);
    const reader = first.body!.getReader();
    const { value } = await reader.read();
    expect(new TextDecoder().decode(value)).toContain('elicitation/create');

    const second = await rawPost(gateway, call, inSession);
    expect(second.status).toBe(409);
    expect(await second.json()).toEqual({ jsonrpc: '2.0', error: { code: -32600, message: 'Invalid Request: a request with this id is still in progress in this session' }, id: 5 });
    const other = await rawPost(gateway, JSON.stringify({ jsonrpc: '2.0', id: 6, method: 'ping' }), inSession);
    expect(other.status).toBe(200);
    await other.text();

    await reader.cancel();
    // Once the first exchange is over, its id may be used again.
    for (let attempt = 0; attempt < 50; attempt += 1) {
      const again = await rawPost(gateway, JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'ping' }), inSession);
      await again.text();
      if (again.status === 200) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error('the id stayed in use after its exchange ended');
  });

  it('ends the response stream of a request the client cancelled', async () => {
    const fixture = await startConformanceUpstream();
    onTestFinished(() => fixture.close());
    const gateway = await startGateway();
    gateway.upstreamsOf.set('alice', [{ name: 'fixture', displayName: 'Fixture', url: fixture.url }]);
    const inSession = await openRawSession(gateway);
    const call = JSON.stringify({ jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'fixture__test_elicitation', arguments: { message: 'Who are you?' } } });
    const first = await rawPost(gateway, call, inSession);
    const reader = first.body!.getReader();
    const { value } = await reader.read();
    expect(new TextDecoder().decode(value)).toContain('elicitation/create');
    const cancelled = await rawPost(gateway, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 8, reason: 'the user gave up' } }), inSession);
    expect(cancelled.status).toBe(202);
    // The stream ends (rather than staying open until a timeout), with no answer to the cancelled request.
    let rest = '';
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += new TextDecoder().decode(chunk.value);
    expect(rest).not.toContain('"id":8');
  });

  it('keeps each user and client within their session limit: the least recently used idle session ends, a busy one never does', async () => {
    const fixture = await startConformanceUpstream();
    onTestFinished(() => fixture.close());
    const gateway = await startGateway({ maxSessionsPerClient: 2 });
    gateway.upstreamsOf.set('alice', [{ name: 'fixture', displayName: 'Fixture', url: fixture.url }]);
    const oldest = await openRawSession(gateway);
    const newer = await openRawSession(gateway);
    await (await rawPost(gateway, ping, newer)).text();
    const third = await openRawSession(gateway);
    expect(gateway.endpoint.sessionCount()).toBe(2);
    expect((await rawPost(gateway, ping, oldest)).status).toBe(404);
    expect((await rawPost(gateway, ping, newer)).status).toBe(200);

    // Both remaining sessions wait for the user: a new one is refused rather than ending either.
    const waiting = await Promise.all(
      [newer, third].map(async (headers, index) => {
        const call = JSON.stringify({ jsonrpc: '2.0', id: 20 + index, method: 'tools/call', params: { name: 'fixture__test_elicitation', arguments: { message: 'Who?' } } });
        const reader = (await rawPost(gateway, call, headers)).body!.getReader();
        await reader.read();
        return reader;
      }),
    );
    const refused = await rawPost(
      gateway,
      JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
    );
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toContain('at most 2 open sessions per user and client');
    // Another client of the same user has its own limit.
    const otherClient = await rawPost(
      gateway,
      JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
      { 'X-Test-Client': 'client-b' },
    );
    expect(otherClient.status).toBe(200);
    await otherClient.text();
    for (const reader of waiting) await reader.cancel();
  });
});

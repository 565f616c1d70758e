import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { DEMO_UPSTREAM_INFO, startDemoUpstream, type DemoUpstream } from '../../../server/demo/demo-upstream.js';

let demo: DemoUpstream;
const clients: Client[] = [];

beforeAll(async () => {
  demo = await startDemoUpstream();
});

afterAll(async () => {
  await demo.close();
});

afterEach(async () => {
  for (const client of clients.splice(0)) await client.close();
});

async function connect(headers: Record<string, string> = {}): Promise<Client> {
  const client = new Client({ name: 'demo-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(demo.url), { requestInit: { headers } }));
  clients.push(client);
  return client;
}

function text(result: unknown): string {
  const { content } = result as { content: Array<{ type: string; text?: string }> };
  const [first] = content;
  if (first?.type !== 'text' || first.text === undefined) throw new Error(`expected text content, got ${JSON.stringify(content)}`);
  return first.text;
}

describe('demo upstream', () => {
  it('serves on loopback at /mcp and introduces itself', async () => {
    expect(demo.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
    const client = await connect();
    expect(client.getServerVersion()).toEqual(DEMO_UPSTREAM_INFO);
  });

  it('lists its four tools with input schemas', async () => {
    const { tools } = await (await connect()).listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual(['add', 'current_time', 'echo', 'get_request_info']);
    const echo = tools.find((tool) => tool.name === 'echo');
    expect(echo?.inputSchema).toMatchObject({ type: 'object', properties: { text: { type: 'string' } }, required: ['text'] });
  });

  it('echoes its text', async () => {
    const result = await (await connect()).callTool({ name: 'echo', arguments: { text: 'héllo, world' } });
    expect(result).toEqual({ content: [{ type: 'text', text: 'héllo, world' }] });
  });

  it('adds two numbers, as text and as structured content', async () => {
    const result = await (await connect()).callTool({ name: 'add', arguments: { a: 2.5, b: -4 } });
    expect(result).toEqual({ content: [{ type: 'text', text: '-1.5' }], structuredContent: { sum: -1.5 } });
  });

  it('tells the time in UTC by default and in a given time zone', async () => {
    const client = await connect();
    const before = Date.now();
    const utc = await client.callTool({ name: 'current_time', arguments: {} });
    const zoned = await client.callTool({ name: 'current_time', arguments: { timeZone: 'Asia/Tokyo' } });
    expect(utc.isError).toBeUndefined();
    expect(utc.structuredContent).toMatchObject({ timeZone: 'UTC' });
    const iso = (utc.structuredContent as { iso: string }).iso;
    expect(Date.parse(iso)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(iso)).toBeLessThanOrEqual(Date.now() + 1000);
    expect(zoned.structuredContent).toMatchObject({ timeZone: 'Asia/Tokyo' });
    expect((zoned.structuredContent as { local: string }).local).toMatch(/Japan|GMT\+9/);
  });

  it('answers an unknown time zone with an error result', async () => {
    const result = await (await connect()).callTool({ name: 'current_time', arguments: { timeZone: 'Mars/Olympus_Mons' } });
    expect(result.isError).toBe(true);
    expect(text(result)).toBe('Unknown time zone "Mars/Olympus_Mons"; use an IANA name such as "Europe/Paris".');
  });

  it('reports an Authorization header as present without echoing its value', async () => {
    const secret = 'Bearer s3cr3t-token-value';
    const client = await connect({ Authorization: secret, 'X-Request-Id': 'req-42', Cookie: 'sid=hush' });
    const result = await client.callTool({ name: 'get_request_info', arguments: {} });
    expect(result.structuredContent).toMatchObject({
      authorization: 'present',
      authorizationScheme: 'Bearer',
      cookie: 'present',
      mcpSessionId: 'absent',
      headers: { 'x-request-id': 'req-42', 'mcp-protocol-version': expect.any(String) },
    });
    expect(JSON.stringify(result)).not.toContain('s3cr3t');
    expect(JSON.stringify(result)).not.toContain('hush');
  });

  it('reports a missing Authorization header as absent', async () => {
    const result = await (await connect()).callTool({ name: 'get_request_info', arguments: {} });
    expect(result.structuredContent).toMatchObject({ authorization: 'absent', cookie: 'absent' });
    expect(result.structuredContent).not.toHaveProperty('authorizationScheme');
  });

  it('refuses a request whose Host header is not its own', async () => {
    const { request } = await import('node:http');
    const url = new URL(demo.url);
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        { host: url.hostname, port: url.port, path: '/mcp', method: 'POST', headers: { Host: 'evil.example:80', 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.once('error', reject);
      req.end(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }));
    });
    expect(status).toBe(403);
  });

  it('answers GET with 405, as a stateless server', async () => {
    const response = await fetch(demo.url, { headers: { Accept: 'text/event-stream' } });
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('POST');
    await response.body?.cancel();
  });

  it('answers 404 off /mcp', async () => {
    const response = await fetch(new URL('/other', demo.url));
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: 'not_found', error_description: 'the demo MCP endpoint is /mcp' });
  });
});

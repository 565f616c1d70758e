import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as LegacyTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { createMcpHandler, McpServer } from '@modelcontextprotocol/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as z from 'zod';
import { startDemoUpstream, type DemoUpstream } from '../../server/demo/demo-upstream.js';
import { obtainGatewayToken } from '../helpers/gateway-token.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { temporalUnavailable } from '../helpers/temporal.js';

/** An MCP server that speaks MCP 2026-07-28 only: 2025 requests (`initialize`) are refused. */
async function startModernOnlyUpstream(): Promise<{ url: string; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  const handler = createMcpHandler(
    () => {
      const server = new McpServer({ name: 'modern-only', version: '1.0.0' });
      server.registerTool('shout', { description: 'Upper-cases its text', inputSchema: z.object({ text: z.string() }) }, ({ text }) => ({
        content: [{ type: 'text', text: text.toUpperCase() }],
      }));
      server.registerResource('motto', 'modern://motto', { mimeType: 'text/plain' }, (uri) => ({ contents: [{ uri: uri.href, text: 'stateless' }] }));
      return server;
    },
    { legacy: 'reject' },
  );
  const http: HttpServer = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    requests.push(`${req.method} ${body.length > 0 ? ((JSON.parse(body.toString()) as { method?: string }).method ?? '') : ''}`);
    const response = await handler.fetch(
      new Request(`http://${req.headers.host}${req.url}`, {
        method: req.method,
        headers: Object.entries(req.headers).flatMap(([name, value]) => (typeof value === 'string' ? [[name, value] as [string, string]] : [])),
        ...(body.length > 0 ? { body } : {}),
      }),
    );
    res.writeHead(response.status, Object.fromEntries(response.headers));
    if (response.body) Readable.fromWeb(response.body as never).pipe(res);
    else res.end();
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
    requests,
    close: () =>
      new Promise((resolve) => {
        http.closeAllConnections();
        http.close(() => resolve());
      }),
  };
}

describe.skipIf(Boolean(temporalUnavailable))('/mcp/<upstream> across protocol eras', () => {
  let gateway: TestGateway;
  let legacyOnly: DemoUpstream;
  let modernOnly: Awaited<ReturnType<typeof startModernOnlyUpstream>>;

  beforeAll(async () => {
    [legacyOnly, modernOnly] = await Promise.all([startDemoUpstream({ host: '127.0.0.1', port: 0 }), startModernOnlyUpstream()]);
    gateway = await startTestGateway((config) => {
      config.upstreams = [
        { name: 'old', displayName: 'Old server', mcpUrl: legacyOnly.url, auth: { type: 'none' }, scopes: [] },
        { name: 'new', displayName: 'New server', mcpUrl: modernOnly.url, auth: { type: 'none' }, scopes: [] },
      ];
    });
  });

  afterAll(async () => {
    await gateway?.close();
    await legacyOnly?.close();
    await modernOnly?.close();
  });

  it('serves a 2026-07-28 client in front of a 2025-only upstream, names untouched, no session', async () => {
    const { accessToken } = await obtainGatewayToken(gateway.url, { user: 'bridge-modern', resource: `${gateway.url}/mcp/old` });
    for (let round = 0; round < 2; round += 1) {
      // The second round finds the upstream's era already learnt.
      const client = new Client({ name: 'modern', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
      await client.connect(new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp/old`), { requestInit: { headers: { authorization: `Bearer ${accessToken}` } } }));
      try {
        const tools = await client.listTools();
        expect(tools.tools.map((tool) => tool.name)).toContain('echo');
        const echoed = await client.callTool({ name: 'echo', arguments: { text: `round ${round}` } });
        expect(JSON.stringify(echoed.content)).toContain(`round ${round}`);
      } finally {
        await client.close();
      }
    }
    const learnt = gateway.logs.filter((line) => line.includes('upstream protocol era learnt'));
    expect(learnt.filter((line) => line.includes('era=modern') && line.includes('speaks=false'))).toHaveLength(1);
  });

  it('serves a 2025 client in front of a 2026-07-28-only upstream, with a session the gateway holds', async () => {
    const { accessToken } = await obtainGatewayToken(gateway.url, { user: 'bridge-legacy', resource: `${gateway.url}/mcp/new` });
    const client = new LegacyClient({ name: 'legacy', version: '1.0.0' });
    const transport = new LegacyTransport(new URL(`${gateway.url}/mcp/new`), { requestInit: { headers: { authorization: `Bearer ${accessToken}` } } });
    await client.connect(transport);
    try {
      expect(transport.sessionId).toBeTruthy();
      const tools = await client.listTools();
      expect(tools.tools.map((tool) => tool.name)).toEqual(['shout']);
      expect(await client.callTool({ name: 'shout', arguments: { text: 'quiet' } })).toMatchObject({ content: [{ type: 'text', text: 'QUIET' }] });
      const read = await client.readResource({ uri: 'modern://motto' });
      expect(read.contents[0]).toMatchObject({ uri: 'modern://motto', text: 'stateless' });
    } finally {
      await client.close();
    }
    // The upstream never saw a 2025 request after the first initialize it refused.
    expect(modernOnly.requests.filter((line) => line.endsWith(' initialize'))).toHaveLength(1);
  });
});

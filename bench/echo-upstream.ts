/**
 * The forward benchmark's upstream: one `echo` tool, stateless in both eras (a fresh one-tool
 * server per request, the SDK's own idiom: 2026-07-28 through `createMcpHandler`, 2025 requests
 * through its stateless legacy leg, no session), JSON answers (the tool sends no notification). The smallest
 * MCP server the SDK serves, so the figures beside it show what the path in front of it costs.
 */
import { createServer, type Server } from 'node:http';
import { createMcpHandler, McpServer } from '@modelcontextprotocol/server';
import * as z from 'zod';
import { bridge } from '../test/helpers/conformance-upstream.js';
import { freePort } from './support.js';

function echoServer(): McpServer {
  const server = new McpServer({ name: 'bench-echo', version: '1.0.0' }, { capabilities: { tools: {} } });
  server.registerTool('echo', { description: 'Answers with its text', inputSchema: z.object({ text: z.string().optional() }) }, ({ text }) => ({
    content: [{ type: 'text', text: text ?? 'echo' }],
  }));
  return server;
}

/** Starts the echo upstream on a free loopback port; its MCP endpoint is `/mcp`. */
export async function startEchoUpstream(): Promise<{ url: string; close(): Promise<void> }> {
  const handler = createMcpHandler(echoServer, { legacy: 'stateless', onerror: () => {} });
  const port = await freePort();
  const server: Server = createServer((req, res) => {
    if (req.url !== '/mcp') {
      res.writeHead(404).end();
      return;
    }
    bridge((request) => handler.fetch(request), req, res, port).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(error));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    async close() {
      await handler.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

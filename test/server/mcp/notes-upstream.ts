import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { UrlElicitationRequiredError } from '@modelcontextprotocol/sdk/types.js';
import * as z from 'zod';

/** One HTTP request the notes upstream received, with the headers the gateway is expected to set. */
export interface NotesRequest {
  method: string;
  authorization: string | undefined;
  upstreamUser: string | undefined;
}

/** A stateful MCP server standing in for a second upstream; it records what reached it. */
export interface NotesUpstream {
  readonly url: string;
  readonly requests: readonly NotesRequest[];
  /** Sessions opened by `initialize` / ended by an HTTP DELETE. */
  readonly counters: { readonly opened: number; readonly deleted: number };
  /** Sessions alive right now. */
  liveSessions(): number;
  /** Forget every session, as a restarted server would: the next request with an old id gets 404. */
  forgetSessions(): Promise<void>;
  close(): Promise<void>;
}

export const CONNECT_URL = 'https://gateway.test/connect?elicitationId=e-1';

function buildServer(): McpServer {
  const server = new McpServer({ name: 'notes', version: '2.0.0' });
  server.registerTool(
    'reverse',
    { description: 'Reverses a text.', inputSchema: { text: z.string().describe('Text to reverse.') } },
    ({ text }) => ({ content: [{ type: 'text', text: [...text].reverse().join('') }] }),
  );
  server.registerTool('whoami', { description: 'Says which user the gateway said this request is for.' }, (extra) => ({
    content: [{ type: 'text', text: String(extra.requestInfo?.headers['x-upstream-user'] ?? 'nobody') }],
  }));
  server.registerTool(
    'count_to',
    { description: 'Counts to n, reporting progress.', inputSchema: { n: z.number().int().min(1).max(10) } },
    async ({ n }, extra) => {
      const progressToken = extra._meta?.progressToken;
      for (let i = 1; i <= n; i += 1) {
        if (progressToken !== undefined) {
          await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress: i, total: n, message: `at ${i}` } });
        }
      }
      return { content: [{ type: 'text', text: `counted to ${n}` }] };
    },
  );
  server.registerTool('needs_connect', { description: 'Always asks the user to connect first.' }, () => {
    throw new UrlElicitationRequiredError([{ mode: 'url', elicitationId: 'e-1', url: CONNECT_URL, message: 'Connect Notes first.' }]);
  });
  return server;
}

/** Starts the notes upstream on a free loopback port at `/mcp`. */
export async function startNotesUpstream(): Promise<NotesUpstream> {
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const requests: NotesRequest[] = [];
  const counters = { opened: 0, deleted: 0 };

  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      requests.push({
        method: req.method ?? '',
        authorization: req.headers.authorization,
        upstreamUser: req.headers['x-upstream-user'] as string | undefined,
      });
      const sessionId = req.headers['mcp-session-id'];
      let transport = typeof sessionId === 'string' ? transports.get(sessionId) : undefined;
      if (typeof sessionId === 'string' && !transport) {
        res.writeHead(404, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null }));
        return;
      }
      if (!transport) {
        const fresh: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => {
            transports.set(id, fresh);
            counters.opened += 1;
          },
          onsessionclosed: (id) => {
            if (id) transports.delete(id);
            counters.deleted += 1;
          },
        });
        await buildServer().connect(fresh);
        transport = fresh;
      }
      await transport.handleRequest(req, res);
    })().catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(error));
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;

  async function forgetSessions(): Promise<void> {
    const all = [...transports.values()];
    transports.clear();
    await Promise.all(all.map((transport) => transport.close()));
  }

  return {
    url: `http://127.0.0.1:${port}/mcp`,
    requests,
    counters,
    liveSessions: () => transports.size,
    forgetSessions,
    async close() {
      await forgetSessions();
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      });
    },
  };
}

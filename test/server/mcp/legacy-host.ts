import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

/** What a test upstream hosted by {@link startLegacyHost} wants to hear about. */
export interface LegacyHostHooks {
  /** Every HTTP request, before it is served. */
  onRequest?(req: IncomingMessage): void;
  onSessionOpened?(): void;
  /** A session ended by an HTTP DELETE. */
  onSessionDeleted?(): void;
}

/** A sessionful 2025-era (SDK 1.x) MCP server on loopback, one `McpServer` per session. */
export interface LegacyHost {
  readonly url: string;
  /** Sessions alive right now. */
  liveSessions(): number;
  /** Forget every session, as a restarted server would: the next request with an old id gets 404. */
  forgetSessions(): Promise<void>;
  close(): Promise<void>;
}

/** Serves `build()`'s servers with Streamable HTTP sessions on a free loopback port at `/mcp`. */
export async function startLegacyHost(build: () => McpServer, hooks: LegacyHostHooks = {}): Promise<LegacyHost> {
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const http = createServer((req, res) => {
    void (async () => {
      hooks.onRequest?.(req);
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
            hooks.onSessionOpened?.();
          },
          onsessionclosed: (id) => {
            if (id) transports.delete(id);
            hooks.onSessionDeleted?.();
          },
        });
        await build().connect(fresh);
        transport = fresh;
      }
      await transport.handleRequest(req, res);
    })().catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(error));
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));

  async function forgetSessions(): Promise<void> {
    const all = [...transports.values()];
    transports.clear();
    await Promise.all(all.map((transport) => transport.close()));
  }

  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
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

/**
 * A 2025-era (SDK 1.x) MCP server on loopback that keeps no session: a fresh `McpServer` and
 * transport per request, as the SDK's stateless idiom has it. `onRequest` sees each request first.
 */
export async function startStatelessLegacyHost(build: () => McpServer, onRequest: (req: IncomingMessage) => void = () => {}): Promise<{ url: string; close(): Promise<void> }> {
  const http = createServer((req, res) => {
    void (async () => {
      onRequest(req);
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      const server = build();
      res.once('close', () => void server.close());
      await server.connect(transport);
      await transport.handleRequest(req, res);
    })().catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(error));
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
    close: () =>
      new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      }),
  };
}

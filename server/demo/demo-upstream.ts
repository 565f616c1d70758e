import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import * as z from 'zod';

/** The name and version the demo upstream reports in its `initialize` result. */
export const DEMO_UPSTREAM_INFO = { name: 'consent-gateway-demo', version: '1.0.0' } as const;

/** Options of {@link createDemoUpstreamHandler}. */
export interface DemoUpstreamHandlerOptions {
  /**
   * `Host` header values to accept (DNS rebinding protection). Unset: any host, which is only
   * safe behind something that checks it.
   */
  allowedHosts?: string[];
}

/** A Node request handler serving the demo MCP endpoint; it answers every path it is given. */
export type DemoUpstreamHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/**
 * Request headers `get_request_info` reports by value. `authorization` and `cookie` are
 * deliberately absent: only their presence is reported.
 */
const REPORTED_HEADERS = ['user-agent', 'mcp-protocol-version', 'x-request-id', 'x-forwarded-for', 'traceparent'] as const;

const requestInfoOutput = {
  authorization: z.enum(['present', 'absent']).describe('Whether an Authorization header was sent; its value is never shown.'),
  authorizationScheme: z.string().optional().describe('The scheme of the Authorization header, e.g. "Bearer".'),
  cookie: z.enum(['present', 'absent']),
  mcpSessionId: z.enum(['present', 'absent']),
  headers: z.record(z.string(), z.string()).describe(`Values of the headers of interest that were sent: ${REPORTED_HEADERS.join(', ')}.`),
};

/** Builds the demo MCP server with its tools: `echo`, `add`, `current_time`, `get_request_info`. */
export function createDemoMcpServer(): McpServer {
  const server = new McpServer(DEMO_UPSTREAM_INFO, {
    instructions: 'A demo server bundled with the Consent Gateway. Its tools are harmless: try echo, add, current_time and get_request_info.',
  });

  server.registerTool(
    'echo',
    {
      title: 'Echo',
      description: 'Returns the text it is given, unchanged.',
      inputSchema: { text: z.string().describe('Text to send back.') },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    ({ text }) => ({ content: [{ type: 'text', text }] }),
  );

  server.registerTool(
    'add',
    {
      title: 'Add two numbers',
      description: 'Adds two numbers and returns the sum.',
      inputSchema: { a: z.number().describe('First addend.'), b: z.number().describe('Second addend.') },
      outputSchema: { sum: z.number() },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    ({ a, b }) => {
      const sum = a + b;
      return { content: [{ type: 'text', text: String(sum) }], structuredContent: { sum } };
    },
  );

  server.registerTool(
    'current_time',
    {
      title: 'Current time',
      description: 'Returns the current date and time, in UTC or in the given IANA time zone.',
      inputSchema: {
        timeZone: z.string().optional().describe('IANA time zone, e.g. "Europe/Paris". Default: UTC.'),
      },
      outputSchema: { iso: z.string(), timeZone: z.string(), local: z.string() },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    ({ timeZone = 'UTC' }): CallToolResult => {
      const now = new Date();
      let local: string;
      try {
        local = new Intl.DateTimeFormat('en-GB', { timeZone, dateStyle: 'full', timeStyle: 'long' }).format(now);
      } catch {
        return { isError: true, content: [{ type: 'text', text: `Unknown time zone "${timeZone}"; use an IANA name such as "Europe/Paris".` }] };
      }
      const structuredContent = { iso: now.toISOString(), timeZone, local };
      return { content: [{ type: 'text', text: `${local} (${structuredContent.iso})` }], structuredContent };
    },
  );

  server.registerTool(
    'get_request_info',
    {
      title: 'Request info',
      description:
        'Reports which request headers of interest this server saw: whether an Authorization header or cookie was sent (never their values), and the values of User-Agent, MCP-Protocol-Version and tracing headers.',
      outputSchema: requestInfoOutput,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    (extra) => {
      const seen = extra.requestInfo?.headers ?? {};
      const header = (name: string): string | undefined => {
        const value = seen[name];
        return Array.isArray(value) ? value.join(', ') : value;
      };
      const authorization = header('authorization');
      const headers: Record<string, string> = {};
      for (const name of REPORTED_HEADERS) {
        const value = header(name);
        if (value !== undefined) headers[name] = value;
      }
      const scheme = authorization?.trim().split(/\s+/, 1)[0];
      const info = {
        authorization: authorization === undefined ? 'absent' : 'present',
        // Only a well-formed scheme token, so a malformed header cannot leak its value here.
        ...(scheme && /^[A-Za-z][A-Za-z0-9._~+-]{0,31}$/.test(scheme) && authorization?.trim() !== scheme ? { authorizationScheme: scheme } : {}),
        cookie: header('cookie') === undefined ? 'absent' : 'present',
        mcpSessionId: header('mcp-session-id') === undefined ? 'absent' : 'present',
        headers,
      } satisfies Record<string, unknown>;
      return { content: [{ type: 'text', text: JSON.stringify(info, null, 2) }], structuredContent: info };
    },
  );

  return server;
}

/**
 * Creates the demo upstream's request handler: MCP Streamable HTTP in stateless mode, no auth
 * (MCP spec 2025-06-18, Basic/Transports). POST carries JSON-RPC; GET and DELETE answer 405, as
 * a stateless server has no stream to offer and no session to end. Mount it in Koa with
 * `ctx.respond = false; await handler(ctx.req, ctx.res)`.
 */
export function createDemoUpstreamHandler(options: DemoUpstreamHandlerOptions = {}): DemoUpstreamHandler {
  const { allowedHosts } = options;
  return async function demoUpstream(req, res) {
    if (req.method !== 'POST') {
      res.writeHead(405, { Allow: 'POST', 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed: this server is stateless, use POST.' }, id: null }));
      return;
    }
    // Stateless: the SDK refuses to reuse a transport, so each request gets its own pair.
    const server = createDemoMcpServer();
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
      ...(allowedHosts ? { enableDnsRebindingProtection: true, allowedHosts } : {}),
    });
    res.once('close', () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res);
  };
}

/** Options of {@link startDemoUpstream}. */
export interface DemoUpstreamServerOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  host?: string;
  /** Port to listen on; `0` (the default) picks a free one. */
  port?: number;
}

/** A running demo upstream. */
export interface DemoUpstream {
  /** The MCP endpoint, `http://<host>:<port>/mcp`. */
  readonly url: string;
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
}

/**
 * Serves the demo upstream on its own HTTP server at `/mcp`. Requests whose `Host` header is not
 * this server's address are refused, so a web page cannot reach it through DNS rebinding.
 */
export async function startDemoUpstream(options: DemoUpstreamServerOptions = {}): Promise<DemoUpstream> {
  const host = options.host ?? '127.0.0.1';
  const httpServer = createServer();
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(options.port ?? 0, host, () => {
      httpServer.off('error', reject);
      resolve();
    });
  });
  const { port } = httpServer.address() as AddressInfo;
  const authority = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const loopbackAliases = host === '127.0.0.1' || host === '::1' || host === 'localhost' ? [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`] : [];
  const handler = createDemoUpstreamHandler({ allowedHosts: [...new Set([authority, ...loopbackAliases])] });

  httpServer.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://demo.invalid').pathname;
    if (path !== '/mcp') {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: 'not_found', error_description: 'the demo MCP endpoint is /mcp' }));
      return;
    }
    handler(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32603, message: 'Internal error' }, id: null }));
    });
  });

  return {
    url: `http://${authority}/mcp`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        httpServer.close((error) => (error ? reject(error) : resolve()));
        httpServer.closeAllConnections();
      }),
  };
}

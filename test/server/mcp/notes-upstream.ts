import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { UrlElicitationRequiredError } from '@modelcontextprotocol/sdk/types.js';
import * as z from 'zod';

import { startLegacyHost } from './legacy-host.js';

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
  const requests: NotesRequest[] = [];
  const counters = { opened: 0, deleted: 0 };
  const host = await startLegacyHost(buildServer, {
    onRequest: (req) =>
      requests.push({
        method: req.method ?? '',
        authorization: req.headers.authorization,
        upstreamUser: req.headers['x-upstream-user'] as string | undefined,
      }),
    onSessionOpened: () => (counters.opened += 1),
    onSessionDeleted: () => (counters.deleted += 1),
  });
  return { ...host, requests, counters };
}

import { randomUUID } from 'node:crypto';

import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import {
  ListResourcesRequestSchema,
  SetLevelRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
  type LoggingLevel,
} from '@modelcontextprotocol/sdk/types.js';
import * as z from 'zod';

import { startLegacyHost } from './legacy-host.js';

/** A 2025-era (SDK 1.x) upstream that asks its client things (elicitation, sampling, roots) and pushes notifications. */
export interface DeskUpstream {
  readonly url: string;
  /** Calls of `wait` that ended because the caller cancelled them. */
  readonly cancelled: number;
  /** Resource URIs some session subscribed to. */
  readonly subscriptions: ReadonlySet<string>;
  /** Sessions open right now (ended by DELETE or not yet). */
  liveSessions(): number;
  /** The last level a session set with `logging/setLevel`. */
  readonly logLevel: LoggingLevel | undefined;
  /** Cancels (with `notifications/cancelled`) the elicitations `ask_then_cancel` calls have sent and are waiting on. */
  cancelAsks(): number;
  close(): Promise<void>;
}

/** Items `desk://item/<n>` listed two per page, so a client must follow `nextCursor`. */
export const DESK_ITEMS = 5;
const PAGE_SIZE = 2;

/** Starts the desk upstream on a free loopback port at `/mcp`. */
export async function startDeskUpstream(): Promise<DeskUpstream> {
  const state = { cancelled: 0, subscriptions: new Set<string>(), logLevel: undefined as LoggingLevel | undefined };
  const pendingAsks = new Set<AbortController>();

  function build(): McpServer {
    const mcp = new McpServer({ name: 'desk', version: '1.0.0' }, { capabilities: { logging: {}, resources: { subscribe: true, listChanged: true } } });
    mcp.registerTool('ask', { description: 'Asks the user for a name.' }, async (extra) => {
      const answer = await mcp.server.elicitInput(
        { mode: 'form', message: 'Your name?', requestedSchema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] } },
        { relatedRequestId: extra.requestId },
      );
      return { content: [{ type: 'text', text: `${answer.action}: ${String(answer.content?.['name'] ?? '')}` }] };
    });
    mcp.registerTool('ask_then_cancel', { description: 'Asks the user for a name, and withdraws the question when the test says so.' }, async (extra) => {
      const withdraw = new AbortController();
      pendingAsks.add(withdraw);
      try {
        await mcp.server.elicitInput(
          { mode: 'form', message: 'Your name?', requestedSchema: { type: 'object', properties: { name: { type: 'string' } } } },
          { relatedRequestId: extra.requestId, signal: withdraw.signal },
        );
        return { content: [{ type: 'text', text: 'answered' }] };
      } catch {
        return { content: [{ type: 'text', text: 'withdrawn' }] };
      } finally {
        pendingAsks.delete(withdraw);
      }
    });
    mcp.registerTool('sample', { description: 'Asks the client for a completion.' }, async (extra) => {
      const result = await mcp.server.createMessage(
        { messages: [{ role: 'user', content: { type: 'text', text: 'Say hi' } }], maxTokens: 10 },
        { relatedRequestId: extra.requestId },
      );
      return { content: [{ type: 'text', text: `sampled: ${result.content.type === 'text' ? result.content.text : '?'}` }] };
    });
    mcp.registerTool('roots', { description: "Lists the client's roots." }, async (extra) => {
      const { roots } = await mcp.server.listRoots(undefined, { relatedRequestId: extra.requestId });
      return { content: [{ type: 'text', text: roots.map((root) => root.uri).join(',') }] };
    });
    mcp.registerTool('wait', { description: 'Reports progress once, then waits until cancelled.' }, async (extra) => {
      const progressToken = extra._meta?.progressToken;
      if (progressToken !== undefined) await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress: 1, total: 2 } });
      await new Promise<void>((resolve) => extra.signal.addEventListener('abort', () => resolve(), { once: true }));
      state.cancelled += 1;
      return { content: [{ type: 'text', text: 'cancelled' }] };
    });
    mcp.registerTool('grow', { description: 'Adds a tool, announcing a changed tool list.' }, () => {
      mcp.registerTool(`grown_${randomUUID().slice(0, 8)}`, { description: 'Added by grow.' }, () => ({ content: [] }));
      return { content: [{ type: 'text', text: 'grown' }] };
    });
    mcp.registerTool('touch', { description: 'Tells subscribers that desk://item/1 changed.' }, async () => {
      await mcp.server.sendResourceUpdated({ uri: 'desk://item/1' });
      return { content: [{ type: 'text', text: 'touched' }] };
    });
    mcp.registerTool('log', { description: 'Sends one log message at warning level.' }, async () => {
      await mcp.server.sendLoggingMessage({ level: 'warning', logger: 'desk', data: 'desk says hello' });
      return { content: [{ type: 'text', text: 'logged' }] };
    });
    mcp.registerPrompt('brief', { description: 'A brief on a topic.', argsSchema: { topic: z.string() } }, ({ topic }) => ({
      messages: [{ role: 'user', content: { type: 'text', text: `Brief me on ${topic}.` } }],
    }));
    mcp.registerResource(
      'item',
      new ResourceTemplate('desk://item/{id}', { list: undefined, complete: { id: (value) => ['1', '2', '3'].filter((id) => id.startsWith(value)) } }),
      { mimeType: 'text/plain' },
      (uri, { id }) => ({ contents: [{ uri: uri.href, mimeType: 'text/plain', text: `item ${String(id)}` }] }),
    );
    mcp.server.setRequestHandler(ListResourcesRequestSchema, (request) => {
      const start = Number(request.params?.cursor ?? '0');
      const resources = Array.from({ length: DESK_ITEMS }, (_, index) => ({ uri: `desk://item/${index + 1}`, name: `item-${index + 1}`, mimeType: 'text/plain' }));
      const next = start + PAGE_SIZE;
      return { resources: resources.slice(start, next), ...(next < DESK_ITEMS ? { nextCursor: String(next) } : {}) };
    });
    mcp.server.setRequestHandler(SubscribeRequestSchema, (request) => {
      state.subscriptions.add(request.params.uri);
      return {};
    });
    mcp.server.setRequestHandler(UnsubscribeRequestSchema, (request) => {
      state.subscriptions.delete(request.params.uri);
      return {};
    });
    mcp.server.setRequestHandler(SetLevelRequestSchema, (request) => {
      state.logLevel = request.params.level;
      return {};
    });
    return mcp;
  }

  const host = await startLegacyHost(build);

  return {
    url: host.url,
    get cancelled() {
      return state.cancelled;
    },
    subscriptions: state.subscriptions,
    liveSessions: () => host.liveSessions(),
    get logLevel() {
      return state.logLevel;
    },
    cancelAsks() {
      const asks = [...pendingAsks];
      for (const ask of asks) ask.abort('withdrawn by the test');
      return asks.length;
    },
    async close() {
      await host.close();
    },
  };
}

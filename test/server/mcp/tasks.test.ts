import { randomBytes } from 'node:crypto';

import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { createLogger } from '../../../server/log.js';
import type { McpCaller, McpUpstream } from '../../../server/mcp/endpoint.js';
import { createPassthroughEndpoint } from '../../../server/mcp/passthrough.js';
import { startTasksUpstream, TASKS_EXTENSION, type TasksUpstream } from '../../helpers/tasks-upstream.js';
import { MODERN_VERSION, serveForThisTest, startGateway } from './aggregate-harness.js';
import { startDeskUpstream, type DeskUpstream } from './desk-upstream.js';

let tk: TasksUpstream;
let desk: DeskUpstream;
let tkUpstream: McpUpstream;
let deskUpstream: McpUpstream;

beforeAll(async () => {
  [tk, desk] = await Promise.all([startTasksUpstream(), startDeskUpstream()]);
  tkUpstream = { name: 'tk', displayName: 'Tasks', url: tk.url };
  deskUpstream = { name: 'desk', displayName: 'Desk', url: desk.url };
});

afterAll(async () => {
  await Promise.all([tk?.close(), desk?.close()]);
});

const WITH_TASKS = { extensions: { [TASKS_EXTENSION]: {} } };
/** Each upstream request says whose credentials it carries; the fixture binds a task to that user. */
const credentials = (caller: McpCaller) => ({ 'X-Upstream-User': caller.userId });

type Answer = { jsonrpc: '2.0'; id: number; result?: Record<string, unknown>; error?: { code: number; message: string; data?: unknown } };
type Post = (method: string, params?: Record<string, unknown>, capabilities?: Record<string, unknown>) => Promise<Answer>;

let nextId = 1;

/**
 * Sends one MCP 2026-07-28 request by hand, as `user`: the SDK v2 client refuses a
 * `resultType: "task"` result, and these tests must see the bytes the endpoint sends.
 */
function poster(url: string, user: string): Post {
  return async (method, params = {}, capabilities = WITH_TASKS) => {
    const id = nextId++;
    const name = (params['taskId'] ?? params['name'] ?? params['uri']) as string | undefined;
    const response = await fetch(url, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Accept: 'application/json, text/event-stream',
        'X-Test-User': user,
        'MCP-Protocol-Version': MODERN_VERSION,
        'Mcp-Method': method,
        ...(name !== undefined && method !== 'server/discover' ? { 'Mcp-Name': name } : {}),
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id,
        method,
        params: {
          ...params,
          _meta: {
            'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
            'io.modelcontextprotocol/clientInfo': { name: 'tasks-test', version: '1.0.0' },
            'io.modelcontextprotocol/clientCapabilities': capabilities,
          },
        },
      }),
    });
    const text = await response.text();
    const messages = text.startsWith('{') ? [text] : text.split('\n').filter((line) => line.startsWith('data: ')).map((line) => line.slice(6));
    const answer = messages.map((message) => JSON.parse(message) as Answer).find((message) => message.id === id);
    if (!answer) throw new Error(`no answer to ${method} (HTTP ${response.status}): ${text.slice(0, 300)}`);
    return answer;
  };
}

/** Polls `tasks/get` until the task reaches `status` (or a terminal one). */
async function untilStatus(post: Post, taskId: string, status: string): Promise<Record<string, unknown>> {
  let task: Record<string, unknown> = {};
  await vi.waitFor(
    async () => {
      const answer = await post('tasks/get', { taskId });
      task = answer.result ?? {};
      expect([status, 'completed', 'failed', 'cancelled']).toContain(task['status']);
    },
    { timeout: 5_000, interval: 20 },
  );
  return task;
}

/** `/mcp/tk`: the single-upstream endpoint, every message forwarded as it came. */
async function startPassthrough(): Promise<string> {
  const log = createLogger('error', () => undefined);
  const endpoint = createPassthroughEndpoint({ log, upstreamHeaders: async (caller) => credentials(caller), sessionKeys: [randomBytes(32)], maxBodyBytes: 1024 * 1024 });
  const app = new Koa();
  app.silent = true;
  app.use(async (ctx, next) => {
    ctx.state['caller'] = { userId: ctx.get('x-test-user') || 'alice', clientId: 'client-a', upstreams: [tkUpstream] } satisfies McpCaller;
    await endpoint.middleware(ctx, next);
  });
  // The endpoint serves whatever path it is mounted at; `/mcp/tk` reads as the gateway's URL would.
  return `${await serveForThisTest(app, () => endpoint.close())}/tk`;
}

async function startAggregate(): Promise<string> {
  const { url } = await startGateway((user) => (user === 'carol' ? [deskUpstream] : [tkUpstream, deskUpstream]), { upstreamHeaders: credentials });
  return url;
}

describe.each([
  { endpoint: '/mcp', start: startAggregate, tool: 'tk__', taskPrefix: 'tk.' },
  { endpoint: '/mcp/<upstream>', start: startPassthrough, tool: '', taskPrefix: '' },
])('MCP Tasks (SEP-2663) through $endpoint', ({ start, tool, taskPrefix }) => {
  it('returns a task for a task-supporting tool, and tasks/get polls it to its inlined result', async () => {
    const post = poster(await start(), 'alice');
    const created = await post('tools/call', { name: `${tool}slow_compute`, arguments: { seconds: 0, label: 'one' } });
    expect(created.result).toMatchObject({ resultType: 'task', status: 'working', ttlMs: 60_000, pollIntervalMs: 50 });
    const taskId = created.result!['taskId'] as string;
    expect(taskId.startsWith(taskPrefix)).toBe(true);
    expect(created.result).not.toHaveProperty('result');

    const done = await untilStatus(post, taskId, 'completed');
    expect(done).toMatchObject({ resultType: 'complete', taskId, status: 'completed', result: { content: [{ type: 'text', text: 'computed one' }] } });
  });

  it('surfaces a task\'s input requests on tasks/get and hands the answers of tasks/update to it', async () => {
    const post = poster(await start(), 'alice');
    const created = await post('tools/call', { name: `${tool}confirm_delete`, arguments: { path: '/tmp/x' } });
    const taskId = created.result!['taskId'] as string;
    const waiting = await untilStatus(post, taskId, 'input_required');
    expect(waiting).toMatchObject({ status: 'input_required', inputRequests: { confirm: { method: 'elicitation/create' } } });

    const ack = await post('tasks/update', { taskId, inputResponses: { confirm: { action: 'accept', content: { ok: 'yes' } } } });
    expect(Object.keys(ack.result ?? {}).filter((key) => key !== '_meta')).toEqual(['resultType']);
    expect(await untilStatus(post, taskId, 'completed')).toMatchObject({ result: { content: [{ type: 'text', text: 'delete /tmp/x: yes' }] } });
  });

  it('cancels a task with tasks/cancel', async () => {
    const post = poster(await start(), 'alice');
    const taskId = (await post('tools/call', { name: `${tool}slow_compute`, arguments: { seconds: 60, label: 'long' } })).result!['taskId'] as string;
    expect((await post('tasks/cancel', { taskId })).result).toMatchObject({ resultType: 'complete' });
    expect((await post('tasks/get', { taskId })).result).toMatchObject({ taskId, status: 'cancelled' });
  });

  it('keeps a task to the user whose credentials created it', async () => {
    const url = await start();
    const taskId = (await poster(url, 'alice')('tools/call', { name: `${tool}slow_compute`, arguments: { seconds: 60 } })).result!['taskId'] as string;
    const answer = await poster(url, 'bob')('tasks/get', { taskId });
    expect(answer).toMatchObject({ id: expect.any(Number), error: { code: -32602 } });
    await poster(url, 'alice')('tasks/cancel', { taskId });
  });

  it('answers tasks/get without the extension declared with -32021, and tasks/list (not in SEP-2663) with -32601', async () => {
    const post = poster(await start(), 'alice');
    const gated = await post('tasks/get', { taskId: `${taskPrefix}anything` }, {});
    expect(gated).toMatchObject({ error: { code: -32021, data: { requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } } } } });
    expect(await post('tasks/list', {})).toMatchObject({ error: { code: -32601 } });
  });

  it('runs a call synchronously for a client without the extension, tolerating a 2025-11-25 task hint', async () => {
    const post = poster(await start(), 'alice');
    const answer = await post('tools/call', { name: `${tool}slow_compute`, arguments: { seconds: 0, label: 'sync' }, task: { ttl: 1000 } }, {});
    expect(answer.result).toMatchObject({ resultType: 'complete', content: [{ type: 'text', text: 'computed sync' }] });
    expect(answer.result).not.toHaveProperty('taskId');
  });
});

describe('MCP Tasks through /mcp', () => {
  it('advertises the extension in server/discover when an upstream of the grant offers it', async () => {
    const url = await startAggregate();
    const alice = await poster(url, 'alice')('server/discover', {});
    expect(alice.result).toMatchObject({ capabilities: { extensions: { [TASKS_EXTENSION]: {} } } });
    const carol = await poster(url, 'carol')('server/discover', {});
    expect(carol.result?.['capabilities']).not.toHaveProperty('extensions');
  });

  it('routes tasks/get by the upstream its id names, on a gateway process that never saw the task', async () => {
    const first = await startAggregate();
    const second = await startAggregate();
    const taskId = (await poster(first, 'alice')('tools/call', { name: 'tk__slow_compute', arguments: { seconds: 0, label: 'elsewhere' } })).result!['taskId'] as string;
    expect(await untilStatus(poster(second, 'alice'), taskId, 'completed')).toMatchObject({ taskId, result: { content: [{ text: 'computed elsewhere' }] } });
  });

  it('answers a task id that leads to no upstream of the caller with -32602 and the request id', async () => {
    const post = poster(await startAggregate(), 'carol');
    for (const taskId of ['tk.some-task', 'no-upstream-prefix', 'nowhere.1']) {
      expect(await post('tasks/get', { taskId })).toMatchObject({ jsonrpc: '2.0', id: expect.any(Number), error: { code: -32602 } });
    }
  });
});

import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { createServer } from 'node:http';

import { McpServer as LegacyMcpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { createMcpHandler, McpServer } from '@modelcontextprotocol/server';
import * as z from 'zod';

import { withoutCompleteResultType } from '../../../server/mcp/aggregate/legacy-fast-call.js';
import { eventData } from '../../../server/mcp/json-rpc.js';
import type { McpUpstream } from '../../../server/mcp/endpoint.js';
import { bridge, startConformanceUpstream, type ConformanceUpstream } from '../../helpers/conformance-upstream.js';
import { freePort } from '../../helpers/free-port.js';
import { afterThisTest, connectLegacy, connectModern, MODERN_VERSION, startGateway } from './aggregate-harness.js';
import { startStatelessLegacyHost } from './legacy-host.js';
import { startNotesUpstream } from './notes-upstream.js';

let conf: ConformanceUpstream;
let upstreams: McpUpstream[];

beforeAll(async () => {
  conf = await startConformanceUpstream({ name: 'conf' });
  upstreams = [{ name: 'conf', displayName: 'Conformance', url: conf.url }];
});

afterAll(async () => {
  await conf?.close();
});

const envelope = (capabilities: object = {}) => ({
  'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
  'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
  'io.modelcontextprotocol/clientCapabilities': capabilities,
});

/** A raw 2026-07-28 tools/call; returns the JSON-RPC messages of the answer (one, or the SSE events). */
async function call(url: string, id: number, name: string, params: Record<string, unknown> = {}, capabilities: object = {}): Promise<Record<string, unknown>[]> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': MODERN_VERSION, 'mcp-method': 'tools/call', 'mcp-name': name },
    body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {}, ...params, _meta: { ...envelope(capabilities), ...((params['_meta'] as object) ?? {}) } } }),
  });
  expect(response.status).toBe(200);
  const text = await response.text();
  if (text.startsWith('{')) return [JSON.parse(text) as Record<string, unknown>];
  return text
    .split('\n')
    .filter((line) => line.startsWith('data:'))
    .map((line) => JSON.parse(line.slice(5)) as Record<string, unknown>);
}

/** A gateway whose era cache already knows the upstream (as after any first request to it). */
async function warmGateway(of: () => McpUpstream[] = () => upstreams) {
  const gateway = await startGateway(of);
  const client = await connectModern(gateway.url);
  await client.listTools();
  return gateway;
}

const fastPathTaken = (logged: string[]) => logged.filter((line) => line.includes('tools/call on the fast path')).length;

describe('the 2026-07-28 tools/call fast path of /mcp', () => {
  it('maps the name back, forwards, and streams the result through unchanged', async () => {
    const gateway = await warmGateway();
    const [answer] = await call(gateway.url, 31, 'conf__test_simple_text');
    expect(answer).toMatchObject({ jsonrpc: '2.0', id: 31, result: { content: [{ type: 'text', text: 'This is a simple text response for testing.' }] } });
    expect(fastPathTaken(gateway.logged)).toBe(1);
  });

  it('relays progress with the client\'s own token before the result', async () => {
    const gateway = await warmGateway();
    const messages = await call(gateway.url, 32, 'conf__test_tool_with_progress', { _meta: { progressToken: 'p-32' } });
    const progress = messages.filter((message) => message['method'] === 'notifications/progress');
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.every((message) => (message['params'] as { progressToken: string }).progressToken === 'p-32')).toBe(true);
    expect(messages.at(-1)).toMatchObject({ id: 32, result: { content: expect.any(Array) } });
    expect(fastPathTaken(gateway.logged)).toBe(1);
  });

  it('marks an input-required result with its upstream, and the next round finishes the call', async () => {
    const gateway = await warmGateway();
    const [round1] = await call(gateway.url, 33, 'conf__test_input_required_result_elicitation', {}, { elicitation: { form: {} } });
    const result = round1!['result'] as { resultType: string; requestState: string; inputRequests: Record<string, unknown> };
    expect(result.resultType).toBe('input_required');
    // This tool keeps no state of its own: the gateway's prefix alone says which upstream answers next.
    expect(result.requestState).toBe('u.conf');
    expect(fastPathTaken(gateway.logged)).toBe(1);
    const [key] = Object.keys(result.inputRequests);
    const round2 = await call(
      gateway.url,
      34,
      'conf__test_input_required_result_elicitation',
      { requestState: result.requestState, inputResponses: { [key!]: { action: 'accept', content: { name: 'Ada' } } } },
      { elicitation: { form: {} } },
    );
    expect(JSON.stringify(round2.at(-1))).toContain('Hello, Ada!');
  });

  it('answers an unreachable upstream with an isError result naming it', async () => {
    const doomed = await startConformanceUpstream({ name: 'doomed' });
    const gateway = await warmGateway(() => [{ name: 'doomed', displayName: 'Doomed', url: doomed.url }]);
    await doomed.close();
    const [answer] = await call(gateway.url, 35, 'doomed__test_simple_text');
    expect(answer).toMatchObject({ id: 35, result: { isError: true, content: [{ type: 'text', text: expect.stringContaining('Upstream "Doomed" (doomed) is unavailable') }] } });
    expect(fastPathTaken(gateway.logged)).toBe(1);
  });
});

const LEGACY_VERSION = '2025-11-25';
const legacyFastPathTaken = (logged: string[]) => logged.filter((line) => line.includes('tools/call on the legacy fast path')).length;

/** A raw 2025-11-25 session on `url`: its id, and a sender of one POST in it that returns status, content type and JSON-RPC messages. */
async function openRawSession(url: string, capabilities: object = {}) {
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  const init = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: LEGACY_VERSION, capabilities, clientInfo: { name: 'raw', version: '1' } } }),
  });
  const session = init.headers.get('mcp-session-id');
  await init.text();
  expect(session).toBeTruthy();
  const post = async (body: object, extra: Record<string, string> = {}) => {
    const response = await fetch(url, { method: 'POST', headers: { ...headers, 'mcp-session-id': session!, 'mcp-protocol-version': LEGACY_VERSION, ...extra }, body: JSON.stringify(body) });
    const text = await response.text();
    const type = response.headers.get('content-type') ?? '';
    const messages = type.includes('text/event-stream')
      ? text
          .split('\n')
          .filter((line) => line.startsWith('data:'))
          .map((line) => JSON.parse(line.slice(5)) as Record<string, unknown>)
      : text
        ? [JSON.parse(text) as Record<string, unknown>]
        : [];
    return { status: response.status, type, session: response.headers.get('mcp-session-id'), messages, text, headers: response.headers };
  };
  await post({ jsonrpc: '2.0', method: 'notifications/initialized' });
  // The first request to the upstream teaches the gateway its era; from then on calls may take the fast path.
  await post({ jsonrpc: '2.0', id: 'warm', method: 'tools/list' });
  return { session: session!, post };
}

const toolCall = (id: number | string, name: string, extra: Record<string, unknown> = {}) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {}, ...extra } });

describe('the answers of the 2026-07-28 tools/call fast path', () => {
  it('sends an event stream that came whole, already ended, in one response of known length', async () => {
    // Tool results as an ended event stream, everything else as JSON.
    const upstream = await startIndentingUpstream((answer) =>
      (answer['result'] as { content?: unknown } | undefined)?.content ? { type: 'text/event-stream', body: `event: message\ndata: ${JSON.stringify(answer)}\n\n` } : { type: 'application/json', body: JSON.stringify(answer) },
    );
    const gateway = await warmGateway(() => [upstream]);
    const response = await fetch(gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': MODERN_VERSION, 'mcp-method': 'tools/call', 'mcp-name': 'ind__plain' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 41, method: 'tools/call', params: { name: 'ind__plain', arguments: {}, _meta: envelope() } }),
    });
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    const text = await response.text();
    expect(fastPathTaken(gateway.logged)).toBe(1);
    expect(response.headers.get('content-length')).toBe(String(Buffer.byteLength(text)));
    expect(text).toMatch(/^event: message\ndata: \{.*"id":41.*\}\n\n$/);
    expect(JSON.parse(text.split('data: ')[1]!)).toMatchObject({ id: 41, result: { content: [{ type: 'text', text: 'kept as written' }] } });
  });
});

describe('the 2025-11-25 session tools/call fast path of /mcp', () => {
  it('answers an SDK 1.x client in its session: name mapped back, result as the upstream gave it', async () => {
    const gateway = await startGateway(() => upstreams);
    const client = await connectLegacy(gateway.url);
    await client.listTools();
    const result = await client.callTool({ name: 'conf__test_simple_text', arguments: {} });
    expect(result.content).toEqual([{ type: 'text', text: 'This is a simple text response for testing.' }]);
    expect(result).not.toHaveProperty('resultType');
    expect(legacyFastPathTaken(gateway.logged)).toBe(1);
  });

  it('gives the same answers as the session server does for a client that may be asked for input', async () => {
    const gateway = await startGateway(() => upstreams);
    const fast = await openRawSession(gateway.url);
    // A client that declared elicitation: the upstream may ask it something, so its calls go through the session server.
    const full = await openRawSession(gateway.url, { elicitation: { form: {} } });
    const names = ['conf__test_simple_text', 'conf__test_image_content', 'conf__test_error_handling', 'conf__test_multiple_content_types', 'conf__no_such_tool'];
    for (const [index, name] of names.entries()) {
      const before = legacyFastPathTaken(gateway.logged);
      const viaFast = await fast.post(toolCall(index + 1, name, { _meta: { 'example.com/trace': 'kept' } }));
      expect(legacyFastPathTaken(gateway.logged)).toBe(before + 1);
      const viaFull = await full.post(toolCall(index + 1, name, { _meta: { 'example.com/trace': 'kept' } }));
      expect(legacyFastPathTaken(gateway.logged)).toBe(before + 1);
      expect(viaFast.status).toBe(200);
      expect(viaFast.session).toBe(fast.session);
      expect(viaFast.messages).toEqual(viaFull.messages);
    }
  });

  it('hands a call to the session server when the client sent a progress token, and relays the progress', async () => {
    const gateway = await startGateway(() => upstreams);
    const { post } = await openRawSession(gateway.url);
    const answer = await post(toolCall(7, 'conf__test_tool_with_progress', { _meta: { progressToken: 'p-7' } }));
    expect(legacyFastPathTaken(gateway.logged)).toBe(0);
    expect(answer.messages.filter((message) => message['method'] === 'notifications/progress').length).toBeGreaterThan(0);
    expect(answer.messages.at(-1)).toMatchObject({ id: 7, result: { content: expect.any(Array) } });
  });

  it('lets the session server answer an upstream that asks for input the 2025 client cannot give in the result', async () => {
    const gateway = await startGateway(() => upstreams);
    const fast = await openRawSession(gateway.url);
    const viaFast = await fast.post(toolCall(8, 'conf__test_input_required_result_elicitation'));
    // The fast path sent the call, saw input_required, and the session server answered in its own way.
    expect(legacyFastPathTaken(gateway.logged)).toBe(1);
    expect(JSON.stringify(viaFast.messages)).not.toContain('input_required');
    expect(viaFast.messages.at(-1)).toMatchObject({ jsonrpc: '2.0', id: 8 });
  });

  it('refuses a call with an unsupported protocol version header as the session transport does', async () => {
    const gateway = await startGateway(() => upstreams);
    const { post } = await openRawSession(gateway.url);
    const answer = await post(toolCall(9, 'conf__test_simple_text'), { 'mcp-protocol-version': '1999-01-01' });
    expect(answer.status).toBe(400);
    expect(legacyFastPathTaken(gateway.logged)).toBe(0);
  });

  it('answers an unreachable upstream with an isError result naming it, the session kept', async () => {
    const doomed = await startConformanceUpstream({ name: 'doomed' });
    let closed = false;
    afterThisTest(async () => {
      if (!closed) await doomed.close();
    });
    const gateway = await startGateway(() => [{ name: 'doomed', displayName: 'Doomed', url: doomed.url }]);
    const { post } = await openRawSession(gateway.url);
    await doomed.close();
    closed = true;
    const answer = await post(toolCall(10, 'doomed__test_simple_text'));
    expect(answer.messages).toEqual([{ jsonrpc: '2.0', id: 10, result: { isError: true, content: [{ type: 'text', text: 'Upstream "Doomed" (doomed) is unavailable: it could not be reached.' }] } }]);
    expect(legacyFastPathTaken(gateway.logged)).toBe(1);
    expect(gateway.endpoint.sessionCount()).toBe(1);
  });
});

/** What an upstream was sent: the method, the protocol version header and the request's `_meta`. */
interface SeenRequest {
  method: string;
  version: string | null;
  meta?: Record<string, unknown>;
}

async function seenRequest(request: Request): Promise<SeenRequest> {
  const body = request.method === 'POST' ? ((await request.clone().json()) as { method?: string; params?: { _meta?: Record<string, unknown> } }) : undefined;
  return { method: body?.method ?? request.method, version: request.headers.get('mcp-protocol-version'), ...(body?.params?._meta ? { meta: body.params._meta } : {}) };
}

/**
 * A 2026-07-28 upstream that writes its JSON answers in its own layout (indented), so a test can
 * tell an answer passed on as written from one the gateway encoded again; `layout` may write a
 * tool's result otherwise (as an event stream sent whole). Its 2025 leg is the SDK's stateless
 * one, or none (`reject`, the default: 2025 calls reach it translated to 2026-07-28); a 2025 call
 * is answered by `answerLegacyCall(id)` instead when that gives a response. Each request it gets is
 * noted in `seen`, and what it answered each `tools/call` (before any layout) in `calls`.
 */
async function startIndentingUpstream(
  layout: (answer: Record<string, unknown>) => { type: string; body: string } = (answer) => ({ type: 'application/json', body: JSON.stringify(answer, null, 2) }),
  {
    legacy = 'reject',
    seen = [],
    answerLegacyCall = () => undefined,
    calls = [],
  }: { legacy?: 'stateless' | 'reject'; seen?: SeenRequest[]; answerLegacyCall?: (id: unknown) => Response | undefined; calls?: { type: string; body: string }[] } = {},
): Promise<McpUpstream> {
  const build = () => {
    const server = new McpServer({ name: 'indenting', version: '1.0.0' }, { capabilities: { tools: {} } });
    server.registerTool('plain', { description: 'Answers with one text.' }, () => ({ content: [{ type: 'text', text: 'kept as written' }] }));
    server.registerTool('nested', { description: 'Answers with structured content that has a member named resultType.', outputSchema: z.object({ resultType: z.string(), n: z.number() }) }, () => ({
      content: [{ type: 'text', text: 'nested' }],
      structuredContent: { resultType: 'complete', n: 1 },
    }));
    return server;
  };
  const handler = createMcpHandler(build, { legacy, onerror: () => {} });
  const port = await freePort();
  const server = createServer((req, res) => {
    const indented = async (request: Request) => {
      const noted = await seenRequest(request);
      seen.push(noted);
      const own = noted.method === 'tools/call' && noted.version !== MODERN_VERSION ? answerLegacyCall(((await request.clone().json()) as { id: unknown }).id) : undefined;
      if (own) return own;
      const response = await handler.fetch(request);
      if (noted.method === 'tools/call') calls.push({ type: response.headers.get('content-type') ?? '', body: await response.clone().text() });
      if (!(response.headers.get('content-type') ?? '').includes('application/json')) return response;
      const headers = new Headers(response.headers);
      headers.delete('content-length');
      const written = layout(JSON.parse(await response.text()) as Record<string, unknown>);
      headers.set('content-type', written.type);
      return new Response(written.body, { status: response.status, headers });
    };
    void bridge(indented, req, res, port);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  afterThisTest(async () => {
    await handler.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return { name: 'ind', displayName: 'Indenting', url: `http://127.0.0.1:${port}/mcp` };
}

describe('the answers of the 2025-11-25 session fast path', () => {
  it('passes the upstream\'s answer on as written, with only its resultType member cut, in one response of known length', async () => {
    const upstream = await startIndentingUpstream();
    const gateway = await startGateway(() => [upstream]);
    const { post } = await openRawSession(gateway.url);
    const answer = await post(toolCall(11, 'ind__plain'));
    expect(legacyFastPathTaken(gateway.logged)).toBe(1);
    expect(answer.messages).toEqual([{ jsonrpc: '2.0', id: 11, result: { content: [{ type: 'text', text: 'kept as written' }], _meta: expect.any(Object) } }]);
    // The upstream's own layout, not the gateway's encoding.
    expect(answer.text).toMatch(/^\{\n {2}"result": \{\n {4}"content": \[/);
    expect(answer.text).not.toContain('resultType');
    expect(answer.headers.get('content-length')).toBe(String(Buffer.byteLength(answer.text)));
    expect(answer.headers.get('transfer-encoding')).toBeNull();
  });

  it('encodes the answer again when its resultType member cannot be told apart from one nested in the result', async () => {
    const upstream = await startIndentingUpstream();
    const gateway = await startGateway(() => [upstream]);
    const { post } = await openRawSession(gateway.url);
    const answer = await post(toolCall(12, 'ind__nested'));
    expect(legacyFastPathTaken(gateway.logged)).toBe(1);
    expect(answer.messages).toEqual([
      { jsonrpc: '2.0', id: 12, result: { content: [{ type: 'text', text: 'nested' }], structuredContent: { resultType: 'complete', n: 1 }, _meta: expect.any(Object) } },
    ]);
    expect(answer.text.startsWith('{"result":')).toBe(true);
  });
});

const sentOnLeg = (logged: string[]) => logged.filter((line) => line.includes('tools/call on the legacy fast path') && line.includes('2025-11-25')).length;

/** One `echo` tool, in the 2025 era only (SDK 1.x). */
function legacyEcho(): LegacyMcpServer {
  const server = new LegacyMcpServer({ name: 'legacy-echo', version: '1.0.0' });
  server.registerTool('echo', { description: 'Answers with its text', inputSchema: { text: z.string() } }, ({ text }) => ({ content: [{ type: 'text', text }] }));
  return server;
}

describe('the 2025-11-25 session fast path on an upstream\'s own 2025 leg', () => {
  it('sends the call in its client\'s era to an upstream that takes 2025 calls without a session, learnt once for every session', async () => {
    const seen: SeenRequest[] = [];
    const answered: { type: string; body: string }[] = [];
    const upstream = await startIndentingUpstream(undefined, { legacy: 'stateless', seen, calls: answered });
    const gateway = await startGateway(() => [upstream]);
    const first = await openRawSession(gateway.url);
    const second = await openRawSession(gateway.url);
    const one = await first.post(toolCall(21, 'ind__plain', { _meta: { 'example.com/trace': 'kept' } }));
    const two = await second.post(toolCall('twenty-two', 'ind__plain'));
    for (const [index, [answer, id]] of ([[one, 21], [two, 'twenty-two']] as const).entries()) {
      expect(answer.status).toBe(200);
      expect(answer.messages).toEqual([{ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: 'kept as written' }] } }]);
      // The upstream's own 2025 answer as it wrote it (the one message of its event stream): nothing to take out, so nothing encoded again.
      const written = answered[index]!;
      expect(written.type).toContain('text/event-stream');
      expect(answer.text).toBe(eventData(written.body)[0]);
    }
    expect(sentOnLeg(gateway.logged)).toBe(2);
    const calls = seen.filter((request) => request.method === 'tools/call');
    expect(calls).toEqual([
      { method: 'tools/call', version: '2025-11-25', meta: { 'example.com/trace': 'kept' } },
      { method: 'tools/call', version: '2025-11-25' },
    ]);
    // Asked once (the sessions' own listings went in 2026-07-28: no initialize of theirs reached it).
    expect(seen.filter((request) => request.method === 'initialize')).toHaveLength(1);
    expect(seen.filter((request) => request.method === 'notifications/initialized')).toHaveLength(1);
  });

  it('takes calls to an upstream of the 2025 era only that keeps no session, learnt from the session server\'s own connection', async () => {
    const seen: { method: string; version: string | undefined; session: string | undefined }[] = [];
    const host = await startStatelessLegacyHost(legacyEcho, (req) => {
      seen.push({ method: req.method ?? '', version: req.headers['mcp-protocol-version'] as string | undefined, session: req.headers['mcp-session-id'] as string | undefined });
    });
    afterThisTest(() => host.close());
    const gateway = await startGateway(() => [{ name: 'old', displayName: 'Old', url: host.url }]);
    const { post } = await openRawSession(gateway.url);
    const before = seen.length;
    const answer = await post(toolCall(23, 'old__echo', { arguments: { text: 'straight through' } }));
    expect(answer.messages).toEqual([{ jsonrpc: '2.0', id: 23, result: { content: [{ type: 'text', text: 'straight through' }] } }]);
    expect(sentOnLeg(gateway.logged)).toBe(1);
    // One request for the call, in the era the session server negotiated, with no session: no probe.
    expect(seen.slice(before)).toEqual([{ method: 'POST', version: '2025-11-25', session: undefined }]);
  });

  it('leaves a call to an upstream whose 2025 leg keeps sessions to the session server, and asks nothing of it', async () => {
    const notes = await startNotesUpstream();
    afterThisTest(() => notes.close());
    const gateway = await startGateway(() => [{ name: 'notes', displayName: 'Notes', url: notes.url }]);
    const { post } = await openRawSession(gateway.url);
    const opened = notes.counters.opened;
    const answer = await post(toolCall(24, 'notes__whoami'));
    expect(answer.status).toBe(200);
    expect(answer.messages.at(-1)).toMatchObject({ jsonrpc: '2.0', id: 24, result: { content: expect.any(Array) } });
    expect(legacyFastPathTaken(gateway.logged)).toBe(0);
    expect(notes.counters.opened).toBe(opened);
  });

  it('ends the session it opened to learn that a 2026-07-28 upstream\'s 2025 leg keeps sessions, and sends its calls in 2026-07-28', async () => {
    const gateway = await startGateway(() => upstreams);
    const { post } = await openRawSession(gateway.url);
    const liveBefore = conf.legacySessionCount();
    const answers = [await post(toolCall(25, 'conf__test_simple_text')), await post(toolCall(26, 'conf__test_simple_text'))];
    for (const [index, answer] of answers.entries()) {
      expect(answer.messages).toMatchObject([{ jsonrpc: '2.0', id: 25 + index, result: { content: [{ type: 'text', text: 'This is a simple text response for testing.' }] } }]);
    }
    expect(legacyFastPathTaken(gateway.logged)).toBe(2);
    expect(sentOnLeg(gateway.logged)).toBe(0);
    await vi.waitFor(() => expect(conf.legacySessionCount()).toBe(liveBefore));
  });

  it('sends the calls in 2026-07-28 again once the leg refuses one, the refused call answered by the session server', async () => {
    const seen: SeenRequest[] = [];
    let refuse = false;
    const refusal = () => Response.json({ jsonrpc: '2.0', id: null, error: { code: -32600, message: 'Bad Request: 2025 calls are not taken here any more' } }, { status: 400 });
    const upstream = await startIndentingUpstream(undefined, { legacy: 'stateless', seen, answerLegacyCall: () => (refuse ? refusal() : undefined) });
    const gateway = await startGateway(() => [upstream]);
    const { post } = await openRawSession(gateway.url);
    const ok = { content: [{ type: 'text', text: 'kept as written' }] };
    expect((await post(toolCall(27, 'ind__plain'))).messages).toEqual([{ jsonrpc: '2.0', id: 27, result: ok }]);
    refuse = true;
    for (const id of [28, 29]) expect((await post(toolCall(id, 'ind__plain'))).messages).toMatchObject([{ jsonrpc: '2.0', id, result: ok }]);
    expect(seen.filter((request) => request.method === 'tools/call').map((request) => request.version)).toEqual(['2025-11-25', '2025-11-25', MODERN_VERSION, MODERN_VERSION]);
    expect(sentOnLeg(gateway.logged)).toBe(2);
    expect(legacyFastPathTaken(gateway.logged)).toBe(3);
  });

  it('answers a call whose 2025 answer carries no result with an isError result saying so, the session kept', async () => {
    const upstream = await startIndentingUpstream(undefined, { legacy: 'stateless', answerLegacyCall: (id) => Response.json({ jsonrpc: '2.0', id }) });
    const gateway = await startGateway(() => [upstream]);
    const { post } = await openRawSession(gateway.url);
    const answer = await post(toolCall(30, 'ind__plain'));
    expect(answer.messages).toEqual([{ jsonrpc: '2.0', id: 30, result: { isError: true, content: [{ type: 'text', text: 'Upstream "Indenting" (ind) is unavailable: it answered the call with no result.' }] } }]);
    expect(sentOnLeg(gateway.logged)).toBe(1);
    expect(gateway.endpoint.sessionCount()).toBe(1);
  });
});

describe('withoutCompleteResultType', () => {
  it('cuts the member and the comma that joins it, wherever it stands in the result', () => {
    expect(withoutCompleteResultType('{"result":{"resultType":"complete","content":[]},"id":1}')).toBe('{"result":{"content":[]},"id":1}');
    expect(withoutCompleteResultType('{"result":{"content":[],"resultType":"complete"},"id":1}')).toBe('{"result":{"content":[]},"id":1}');
    expect(withoutCompleteResultType('{"result":{"a":1,"resultType" : "complete" ,"b":2},"id":1}')).toBe('{"result":{"a":1,"b":2},"id":1}');
    expect(withoutCompleteResultType('{"result":{"resultType":"complete"},"id":1}')).toBe('{"result":{},"id":1}');
  });

  it('leaves the text alone when the member is not the only one of its kind or is written with escapes', () => {
    expect(withoutCompleteResultType('{"result":{"resultType":"complete","structuredContent":{"resultType":"complete"}},"id":1}')).toBeUndefined();
    // Repeated (the last one counts in JSON.parse): cutting one would leave the other.
    expect(withoutCompleteResultType('{"result":{"resultType":"task","content":[],"resultType":"complete"},"id":1}')).toBeUndefined();
    expect(withoutCompleteResultType('{"result":{"result\\u0054ype":"complete","structuredContent":{"resultType":"complete"}},"id":1}')).toBeUndefined();
    expect(withoutCompleteResultType('{"result":{"content":[{"type":"text","text":"a \\"resultType\\":\\"complete\\""}]},"id":1}')).toBeUndefined();
  });
});

describe('credentials on both fast paths', () => {
  it('asks for the caller credentials of each call with its method and URL, as a DPoP proof needs', async () => {
    const asked: { upstream: string; request: unknown }[] = [];
    const gateway = await startGateway(() => upstreams, {
      upstreamHeaders: async (_caller, upstream, request) => {
        asked.push({ upstream: upstream.name, request });
        return {};
      },
    });
    const client = await connectModern(gateway.url);
    await client.listTools();
    asked.length = 0;
    const [modern] = await call(gateway.url, 41, 'conf__test_simple_text');
    expect(modern).toMatchObject({ id: 41, result: { content: [{ type: 'text', text: 'This is a simple text response for testing.' }] } });
    expect(fastPathTaken(gateway.logged)).toBe(1);
    expect(asked).toEqual([{ upstream: 'conf', request: { method: 'POST', url: conf.url } }]);

    const { post } = await openRawSession(gateway.url);
    // The first call also learns whether the upstream takes 2025 calls without a session (it keeps sessions).
    await post(toolCall(40, 'conf__test_simple_text'));
    await vi.waitFor(() => expect(asked.filter(({ request }) => (request as { method: string }).method === 'DELETE')).toHaveLength(1));
    asked.length = 0;
    const legacy = await post(toolCall(42, 'conf__test_simple_text'));
    expect(legacy.messages).toMatchObject([{ id: 42, result: { content: [{ type: 'text', text: 'This is a simple text response for testing.' }] } }]);
    expect(legacyFastPathTaken(gateway.logged)).toBe(2);
    expect(asked).toEqual([{ upstream: 'conf', request: { method: 'POST', url: conf.url } }]);
  });
});

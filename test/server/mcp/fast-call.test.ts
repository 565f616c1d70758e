import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { McpUpstream } from '../../../server/mcp/endpoint.js';
import { startConformanceUpstream, type ConformanceUpstream } from '../../helpers/conformance-upstream.js';
import { connectModern, MODERN_VERSION, startGateway } from './aggregate-harness.js';

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

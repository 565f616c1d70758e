import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from '@modelcontextprotocol/client';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as LegacyTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import type { McpEndpointOptions, McpUpstream } from '../../../server/mcp/endpoint.js';
import { JsonRpcError } from '../../../server/mcp/json-rpc.js';
import { startConformanceUpstream, type ConformanceUpstream } from '../../helpers/conformance-upstream.js';
import { afterThisTest, connectLegacy, connectModern, MODERN_VERSION, startGateway as start } from './aggregate-harness.js';
import { DESK_ITEMS, startDeskUpstream, type DeskUpstream } from './desk-upstream.js';

let conf: ConformanceUpstream;
let desk: DeskUpstream;
let upstreams: McpUpstream[];

beforeAll(async () => {
  [conf, desk] = await Promise.all([startConformanceUpstream({ name: 'conf' }), startDeskUpstream()]);
  upstreams = [
    { name: 'conf', displayName: 'Conformance', url: conf.url },
    { name: 'desk', displayName: 'Desk', url: desk.url },
  ];
});

afterAll(async () => {
  await Promise.all([conf?.close(), desk?.close()]);
});

/** The aggregate endpoint with both upstreams for every user. */
const startGateway = (overrides: Partial<McpEndpointOptions> = {}) => start(() => upstreams, overrides);

type Era = 'legacy' | 'modern';
/** The calls the tests make, the same for an SDK 1.x (2025) client and an SDK v2 client speaking 2026-07-28. */
type AnyClient = Pick<LegacyClient, 'listTools' | 'callTool' | 'listPrompts' | 'getPrompt' | 'listResources' | 'listResourceTemplates' | 'readResource' | 'complete'>;

async function connect(era: Era, url: string): Promise<AnyClient> {
  return era === 'legacy' ? connectLegacy(url) : ((await connectModern(url)) as unknown as AnyClient);
}

/** A direct connection to an upstream, in the era it speaks, to compare what the gateway relays. */
async function direct(upstream: 'conf' | 'desk'): Promise<AnyClient> {
  if (upstream === 'desk') {
    const client = new LegacyClient({ name: 'direct', version: '1.0.0' });
    await client.connect(new LegacyTransport(new URL(desk.url)));
    afterThisTest(() => client.close());
    return client;
  }
  const client = new ModernClient({ name: 'direct', version: '1.0.0' }, { versionNegotiation: { mode: { pin: MODERN_VERSION } } });
  await client.connect(new ModernTransport(new URL(conf.url)));
  afterThisTest(() => client.close());
  return client as unknown as AnyClient;
}

/**
 * A result without what each hop stamps on its own 2026-07-28 responses (`serverInfo` in `_meta`,
 * cache hints, `resultType`), and without the 2025-only `execution` of a tool, which the
 * 2026-07-28 Tool does not have.
 */
function content(result: unknown): unknown {
  const { _meta, ttlMs: _ttl, cacheScope: _scope, resultType: _type, execution: _execution, ...rest } = result as Record<string, unknown>;
  const meta = Object.fromEntries(Object.entries((_meta as Record<string, unknown> | undefined) ?? {}).filter(([key]) => key !== 'io.modelcontextprotocol/serverInfo'));
  return Object.keys(meta).length > 0 ? { ...rest, _meta: meta } : rest;
}

function textOf(result: unknown): string {
  const [first] = (result as { content: Array<{ type: string; text?: string }> }).content;
  return first?.text ?? '';
}

describe.each(['legacy', 'modern'] as const)('aggregate endpoint, %s client', (era) => {
  it('lists the tools of both upstreams named <upstream>__<tool>, each exactly as its upstream lists it', async () => {
    const { url } = await startGateway();
    const client = await connect(era, url);
    const { tools } = await client.listTools();
    for (const name of ['conf', 'desk'] as const) {
      const own = (await (await direct(name)).listTools()).tools;
      expect(own.length).toBeGreaterThan(0);
      for (const tool of own) expect(content(tools.find((listed) => listed.name === `${name}__${tool.name}`))).toEqual(content({ ...tool, name: `${name}__${tool.name}` }));
    }
    const schema = tools.find((tool) => tool.name === 'conf__json_schema_2020_12_tool')?.inputSchema;
    expect(Object.keys(schema ?? {})).toEqual(expect.arrayContaining(['$schema', '$defs', 'allOf', 'if', 'then', 'else', 'additionalProperties']));
  });

  it('calls tools on both upstreams and returns every content type, structured output and isError as sent', async () => {
    const { url } = await startGateway();
    const client = await connect(era, url);
    const confDirect = await direct('conf');
    for (const name of ['test_multiple_content_types', 'test_image_content', 'test_audio_content', 'test_embedded_resource', 'test_error_handling']) {
      expect(content(await client.callTool({ name: `conf__${name}`, arguments: {} }))).toEqual(content(await confDirect.callTool({ name, arguments: {} })));
    }
    expect(textOf(await client.callTool({ name: 'desk__grow', arguments: {} }))).toBe('grown');
  });

  it('lists and gets prompts of both upstreams by their gateway names', async () => {
    const { url } = await startGateway();
    const client = await connect(era, url);
    const names = (await client.listPrompts()).prompts.map((prompt) => prompt.name);
    expect(names).toEqual(expect.arrayContaining(['conf__test_simple_prompt', 'conf__test_prompt_with_arguments', 'desk__brief']));
    expect(content(await client.getPrompt({ name: 'desk__brief', arguments: { topic: 'otters' } }))).toEqual(
      content(await (await direct('desk')).getPrompt({ name: 'brief', arguments: { topic: 'otters' } })),
    );
    expect(content(await client.getPrompt({ name: 'conf__test_prompt_with_arguments', arguments: { arg1: 'a', arg2: 'b' } }))).toEqual(
      content(await (await direct('conf')).getPrompt({ name: 'test_prompt_with_arguments', arguments: { arg1: 'a', arg2: 'b' } })),
    );
  });

  it('pages through the resources of both upstreams with an opaque gateway cursor', async () => {
    const { url } = await startGateway();
    const client = await connect(era, url);
    // The SDK v2 client walks every page itself when given no cursor; ask for one page at a time.
    const pageOf = (params: { cursor?: string }) =>
      era === 'legacy' ? client.listResources(params) : (client as unknown as ModernClient).request({ method: 'resources/list', params });
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await pageOf(cursor === undefined ? {} : { cursor });
      seen.push(...page.resources.map((resource) => resource.uri));
      cursor = page.nextCursor;
      pages += 1;
    } while (cursor !== undefined && pages < 10);
    expect(pages).toBe(3);
    const expected = [
      ...Array.from({ length: DESK_ITEMS }, (_, index) => `mcp-upstream://desk/desk://item/${index + 1}`),
      'mcp-upstream://conf/test://static-text',
      'mcp-upstream://conf/test://static-binary',
      'mcp-upstream://conf/test://watched-resource',
    ];
    expect(seen.sort()).toEqual(expected.sort());
  });

  it('reads text and binary resources, and a template filled in by the client, under gateway URIs', async () => {
    const { url } = await startGateway();
    const client = await connect(era, url);
    expect(content(await client.readResource({ uri: 'mcp-upstream://conf/test://static-binary' }))).toEqual({
      contents: [{ uri: 'mcp-upstream://conf/test://static-binary', mimeType: 'image/png', blob: expect.any(String) }],
    });
    const templates = (await client.listResourceTemplates()).resourceTemplates.map((template) => template.uriTemplate);
    expect(templates).toEqual(expect.arrayContaining(['mcp-upstream://desk/desk://item/{id}', 'mcp-upstream://conf/test://template/{id}/data']));
    const filled = 'mcp-upstream://desk/desk://item/{id}'.replace('{id}', '7');
    expect(content(await client.readResource({ uri: filled }))).toEqual({ contents: [{ uri: filled, mimeType: 'text/plain', text: 'item 7' }] });
  });

  it('routes completion/complete by prompt name and by resource template URI', async () => {
    const { url } = await startGateway();
    const client = await connect(era, url);
    const byPrompt = await client.complete({ ref: { type: 'ref/prompt', name: 'conf__test_prompt_with_arguments' }, argument: { name: 'arg1', value: 'p' } });
    expect(byPrompt).toEqual(
      await (await direct('conf')).complete({ ref: { type: 'ref/prompt', name: 'test_prompt_with_arguments' }, argument: { name: 'arg1', value: 'p' } }),
    );
    const byTemplate = await client.complete({ ref: { type: 'ref/resource', uri: 'mcp-upstream://desk/desk://item/{id}' }, argument: { name: 'id', value: '' } });
    expect(byTemplate.completion.values).toEqual(['1', '2', '3']);
  });

  it('answers a tampered cursor, an unknown tool and an unknown resource with -32602 and the request id', async () => {
    const { url } = await startGateway();
    const post = await rawPoster(era, url);
    const cases = [
      { method: 'resources/list', params: { cursor: 'g1.eyJub3QiOiJvdXJzIn0' } },
      { method: 'tools/list', params: { cursor: 'garbage' } },
      { method: 'tools/call', params: { name: 'nowhere__tool', arguments: {} } },
      { method: 'resources/read', params: { uri: 'mcp-upstream://nowhere/x://y' } },
      { method: 'resources/read', params: { uri: 'test://static-text' } },
    ];
    for (const [index, { method, params }] of cases.entries()) {
      const answer = await post(100 + index, method, params);
      expect(answer).toMatchObject({ jsonrpc: '2.0', id: 100 + index, error: { code: -32602 } });
    }
  });
});

/** Sends one JSON-RPC request the way a client of `era` would (a 2025 session, or the 2026-07-28 envelope) and returns the JSON-RPC answer. */
async function rawPoster(era: Era, url: string): Promise<(id: number, method: string, params: Record<string, unknown>) => Promise<unknown>> {
  let headers: Record<string, string> = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', 'X-Test-User': 'alice' };
  if (era === 'legacy') {
    const transport = new LegacyTransport(new URL(url), { requestInit: { headers: { 'X-Test-User': 'alice' } } });
    const client = new LegacyClient({ name: 'raw', version: '1.0.0' });
    await client.connect(transport);
    afterThisTest(() => client.close());
    headers = { ...headers, 'Mcp-Session-Id': transport.sessionId!, 'MCP-Protocol-Version': transport.protocolVersion! };
  } else {
    headers = { ...headers, 'MCP-Protocol-Version': MODERN_VERSION };
  }
  return async (id, method, params) => {
    const envelope =
      era === 'modern'
        ? {
            _meta: {
              'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
              'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1.0.0' },
              'io.modelcontextprotocol/clientCapabilities': {},
            },
          }
        : {};
    const name = (params['name'] ?? params['uri']) as string | undefined;
    const response = await fetch(url, {
      method: 'POST',
      headers: { ...headers, ...(era === 'modern' ? { 'Mcp-Method': method, ...(name ? { 'Mcp-Name': name } : {}) } : {}) },
      body: JSON.stringify({ jsonrpc: '2.0', id, method, params: { ...params, ...envelope } }),
    });
    const text = await response.text();
    const data = text.startsWith('{') ? text : text.split('\n').find((line) => line.startsWith('data: {'))?.slice(6);
    return JSON.parse(data ?? 'null') as unknown;
  };
}

describe('server→client requests and notifications (2025 client, 2025 upstream)', () => {
  const capabilities = { elicitation: { form: {} }, sampling: {}, roots: { listChanged: true } };

  it('relays an elicitation to the session of the user whose call caused it, and only to that user', async () => {
    const { url } = await startGateway();
    const alice = await connectLegacy(url, 'alice', capabilities);
    const bob = await connectLegacy(url, 'bob', capabilities);
    const asked = { alice: 0, bob: 0 };
    alice.setRequestHandler(ElicitRequestSchema, () => {
      asked.alice += 1;
      return { action: 'accept', content: { name: 'Alice' } };
    });
    bob.setRequestHandler(ElicitRequestSchema, () => {
      asked.bob += 1;
      return { action: 'accept', content: { name: 'Bob' } };
    });
    await bob.listTools();
    expect(textOf(await alice.callTool({ name: 'desk__ask', arguments: {} }))).toBe('accept: Alice');
    expect(asked).toEqual({ alice: 1, bob: 0 });
  });

  it('relays an upstream\'s notifications/cancelled for the elicitation it sent, and the client\'s handler is aborted', async () => {
    const { url } = await startGateway();
    const client = await connectLegacy(url, 'alice', capabilities);
    let asked!: () => void;
    const reached = new Promise<void>((resolve) => (asked = resolve));
    const aborted: string[] = [];
    client.setRequestHandler(ElicitRequestSchema, async (_request, extra) => {
      if (extra.requestId === 0) return { action: 'accept', content: { name: 'first' } };
      asked();
      await new Promise<void>((resolve) => extra.signal.addEventListener('abort', () => resolve(), { once: true }));
      aborted.push(String(extra.signal.reason));
      return { action: 'cancel' };
    });
    // SDK 1.x drops a cancellation of request id 0 (`if (!requestId)`), so the session's first
    // server→client request is spent on an ordinary elicitation.
    await client.callTool({ name: 'desk__ask', arguments: {} });
    const call = client.callTool({ name: 'desk__ask_then_cancel', arguments: {} });
    await reached;
    expect(desk.cancelAsks()).toBe(1);
    expect(textOf(await call)).toBe('withdrawn');
    await vi.waitFor(() => expect(aborted).toEqual(['withdrawn by the test']));
  });

  it('relays sampling and roots requests and sends the answers back', async () => {
    const { url } = await startGateway();
    const client = await connectLegacy(url, 'alice', capabilities);
    client.setRequestHandler(CreateMessageRequestSchema, () => ({ model: 'test-model', role: 'assistant', content: { type: 'text', text: 'hi there' } }));
    client.setRequestHandler(ListRootsRequestSchema, () => ({ roots: [{ uri: 'file:///work', name: 'work' }] }));
    expect(textOf(await client.callTool({ name: 'desk__sample', arguments: {} }))).toBe('sampled: hi there');
    expect(textOf(await client.callTool({ name: 'desk__roots', arguments: {} }))).toBe('file:///work');
  });

  it.each([
    ['a 2025 upstream', 'desk__grow'],
    ['a 2026-07-28 upstream, heard on its subscriptions/listen stream', 'conf__test_trigger_tool_change'],
  ])('relays tools/list_changed from %s', async (_upstream, tool) => {
    const { url } = await startGateway();
    const client = await connectLegacy(url);
    let changes = 0;
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
      changes += 1;
    });
    await client.callTool({ name: tool, arguments: {} });
    await vi.waitFor(() => expect(changes).toBeGreaterThan(0));
  });

  it('subscribes to a resource at its upstream and relays its update under the gateway URI', async () => {
    const { url } = await startGateway();
    const client = await connectLegacy(url);
    const updated: string[] = [];
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (notification) => {
      updated.push(notification.params.uri);
    });
    await client.subscribeResource({ uri: 'mcp-upstream://desk/desk://item/1' });
    expect(desk.subscriptions.has('desk://item/1')).toBe(true);
    await client.callTool({ name: 'desk__touch', arguments: {} });
    await vi.waitFor(() => expect(updated).toEqual(['mcp-upstream://desk/desk://item/1']));
    await client.unsubscribeResource({ uri: 'mcp-upstream://desk/desk://item/1' });
    expect(desk.subscriptions.has('desk://item/1')).toBe(false);
  });

  it('fans logging/setLevel out and relays the upstream log messages', async () => {
    const { url } = await startGateway();
    const client = await connectLegacy(url);
    const messages: unknown[] = [];
    client.setNotificationHandler(LoggingMessageNotificationSchema, (notification) => {
      messages.push(notification.params.data);
    });
    await client.setLoggingLevel('debug');
    expect(desk.logLevel).toBe('debug');
    await client.callTool({ name: 'desk__log', arguments: {} });
    await vi.waitFor(() => expect(messages).toContain('desk says hello'));
  });

  it('relays progress, and a cancelled call is cancelled at the upstream', async () => {
    const { url } = await startGateway();
    const client = await connectLegacy(url);
    const abort = new AbortController();
    const before = desk.cancelled;
    const progress: number[] = [];
    const call = client.callTool({ name: 'desk__wait', arguments: {} }, undefined, {
      signal: abort.signal,
      onprogress: (update) => {
        progress.push(update.progress);
        abort.abort();
      },
    });
    await expect(call).rejects.toThrow();
    expect(progress).toEqual([1]);
    await vi.waitFor(() => expect(desk.cancelled).toBe(before + 1));
  });

  it('turns a 2026-07-28 upstream\'s input-required result into an elicitation of the 2025 client', async () => {
    const { url } = await startGateway();
    const client = await connectLegacy(url, 'alice', capabilities);
    client.setRequestHandler(ElicitRequestSchema, () => ({ action: 'accept', content: { name: 'Ada' } }));
    expect(textOf(await client.callTool({ name: 'conf__test_input_required_result_elicitation', arguments: {} }))).toBe('Hello, Ada!');
  });
});

describe('input-required results (2026-07-28 client)', () => {
  it('carries an upstream\'s input requests to the client and its answers back', async () => {
    const { url } = await startGateway();
    const client = await connectModern(url, 'alice', { elicitation: { form: {} } });
    client.setRequestHandler('elicitation/create', () => ({ action: 'accept', content: { name: 'Grace' } }));
    expect(textOf(await client.callTool({ name: 'conf__test_input_required_result_elicitation', arguments: {} }))).toBe('Hello, Grace!');
  });

  it('wraps the upstream\'s requestState, and a second gateway process can serve the next round', async () => {
    const first = await startGateway();
    const second = await startGateway();
    const client = await connectModern(first.url, 'alice', { elicitation: { form: {} } });
    const round = (await client.callTool({ name: 'conf__test_input_required_result_request_state', arguments: {} }, { allowInputRequired: true })) as unknown as {
      resultType: string;
      requestState: string;
      inputRequests: Record<string, unknown>;
    };
    expect(round.resultType).toBe('input_required');
    expect(round.requestState.startsWith('u.conf.')).toBe(true);
    expect(Object.keys(round.inputRequests)).toEqual(['confirm']);

    const other = await connectModern(second.url, 'alice', { elicitation: { form: {} } });
    const result = await other.callTool({
      name: 'conf__test_input_required_result_request_state',
      arguments: {},
      inputResponses: { confirm: { action: 'accept', content: { ok: true } } },
      requestState: round.requestState,
    } as never);
    expect(result.isError).not.toBe(true);
    expect(second.endpoint.sessionCount()).toBe(0);
  });

  it('refuses a requestState naming another upstream with -32602', async () => {
    const { url } = await startGateway();
    const client = await connectModern(url, 'alice', { elicitation: { form: {} } });
    const error = await client
      .callTool({ name: 'conf__test_input_required_result_request_state', arguments: {}, inputResponses: {}, requestState: 'u.desk.x' } as never)
      .catch((caught: unknown) => caught);
    expect((error as { code?: number }).code).toBe(-32602);
  });

  it('asks to connect a missing upstream with a URL elicitation in an input-required result', async () => {
    const { url } = await startGateway({
      upstreamHeaders: (_caller, upstream): Record<string, string> => {
        if (upstream.name !== 'desk') return {};
        throw new JsonRpcError(-32042, 'Connect Desk first.', {
          elicitations: [{ mode: 'url', elicitationId: 'e-7', url: 'https://gateway.test/connect?e=7', message: 'Connect Desk.' }],
        });
      },
    });
    const client = await connectModern(url, 'alice', { elicitation: { url: {} } });
    const round = (await client.callTool({ name: 'desk__log', arguments: {} }, { allowInputRequired: true })) as unknown as {
      resultType: string;
      requestState: string;
      inputRequests: Record<string, { method: string; params: Record<string, unknown> }>;
    };
    expect(round.resultType).toBe('input_required');
    expect(round.requestState).toBe('c.desk');
    expect(Object.values(round.inputRequests)).toEqual([
      { method: 'elicitation/create', params: expect.objectContaining({ mode: 'url', url: 'https://gateway.test/connect?e=7', message: 'Connect Desk.' }) },
    ]);
  });

  it('ends the 2025 upstream session it opened for a request once the request is answered', async () => {
    const { url } = await startGateway();
    const client = await connectModern(url);
    const live = desk.liveSessions();
    expect(textOf(await client.callTool({ name: 'desk__grow', arguments: {} }))).toBe('grown');
    await vi.waitFor(() => expect(desk.liveSessions()).toBe(live));
  });

  it('relays progress from a 2026-07-28 upstream', async () => {
    const { url } = await startGateway();
    const client = await connectModern(url);
    const progress: number[] = [];
    await client.callTool({ name: 'conf__test_tool_with_progress', arguments: {} }, { onprogress: (update) => progress.push(update.progress) });
    expect(progress).toEqual([0, 50, 100]);
  });
});

describe('cache hints (2026-07-28 client)', () => {
  const listTools = async (url: string, user?: string) => {
    const response = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': MODERN_VERSION,
        'mcp-method': 'tools/list',
        ...(user ? { 'x-test-user': user } : {}),
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 3,
        method: 'tools/list',
        params: { _meta: { 'io.modelcontextprotocol/protocolVersion': MODERN_VERSION, 'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' }, 'io.modelcontextprotocol/clientCapabilities': {} } },
      }),
    });
    const text = await response.text();
    const json = text.startsWith('{') ? text : text.split('\n').find((line) => line.startsWith('data:'))!.slice(5);
    return (JSON.parse(json) as { result: { ttlMs: number; cacheScope: string } }).result;
  };

  it('keeps the shortest lifetime of the upstreams, not cached when an upstream gave none, and never shared across users', async () => {
    const [longer, shorter] = await Promise.all([
      startConformanceUpstream({ name: 'longer', cacheHints: { 'tools/list': { ttlMs: 90_000, cacheScope: 'public' } } }),
      startConformanceUpstream({ name: 'shorter', cacheHints: { 'tools/list': { ttlMs: 30_000, cacheScope: 'public' } } }),
    ]);
    afterThisTest(async () => {
      await Promise.all([longer.close(), shorter.close()]);
    });
    expect(await listTools(longer.url)).toMatchObject({ ttlMs: 90_000, cacheScope: 'public' });
    const hinted = [
      { name: 'longer', displayName: 'Longer', url: longer.url },
      { name: 'shorter', displayName: 'Shorter', url: shorter.url },
    ];
    const gateway = await start((user) => (user === 'hinted' ? hinted : upstreams));
    expect(await listTools(gateway.url, 'hinted')).toMatchObject({ ttlMs: 30_000, cacheScope: 'private' });
    // The 2025 upstream sends no hint: the merged list is not to be cached.
    expect(await listTools(gateway.url)).toMatchObject({ ttlMs: 0, cacheScope: 'private' });
  });
});

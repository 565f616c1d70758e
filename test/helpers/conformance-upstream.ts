import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { Readable } from 'node:stream';

import {
  ResourceTemplate,
  WebStandardStreamableHTTPServerTransport,
  completable,
  createMcpHandler,
  createRequestStateCodec,
  fromJsonSchema,
  hostHeaderValidationResponse,
  inputRequired,
  inputResponse,
  isLegacyRequest,
  localhostAllowedHostnames,
  localhostAllowedOrigins,
  McpServer,
  originValidationResponse,
  CLIENT_CAPABILITIES_META_KEY,
  type ClientCapabilities,
  type InputRequest,
  type JsonSchemaType,
  type InputRequiredResult,
  type McpRequestContext,
  type RequestStateCodec,
  type ServerContext,
  type ServerOptions,
} from '@modelcontextprotocol/server';
import * as z from 'zod';

import { freePort } from './free-port.js';

/** Options of {@link startConformanceUpstream}. */
export interface ConformanceUpstreamOptions {
  /** `serverInfo.name` in both eras. Default `conformance-upstream`. */
  name?: string;
  /** Cache hints of its 2026-07-28 list and read results (SEP-2549). Default: none (the SDK's `ttlMs: 0`, `private`). */
  cacheHints?: ServerOptions['cacheHints'];
}

/** A running conformance fixture; see {@link startConformanceUpstream}. */
export interface ConformanceUpstream {
  /** The MCP endpoint, `http://127.0.0.1:<port>/mcp`, serving both protocol eras. */
  readonly url: string;
  /** Legacy (2025) sessions open right now. */
  legacySessionCount(): number;
  /** Stop listening, end every legacy session and drop open connections. */
  close(): Promise<void>;
}

const MCP_PATH = '/mcp';

/** 1×1 red PNG. */
const RED_PIXEL_PNG =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';

/** A valid WAV file holding one silent 8-bit sample at 8 kHz. */
const SILENT_WAV = Buffer.concat([
  Buffer.from('RIFF'),
  u32(37),
  Buffer.from('WAVEfmt '),
  u32(16),
  u16(1), // PCM
  u16(1), // mono
  u32(8000),
  u32(8000),
  u16(1),
  u16(8),
  Buffer.from('data'),
  u32(1),
  Buffer.from([0x80]),
]).toString('base64');

function u32(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32LE(value);
  return buffer;
}

function u16(value: number): Buffer {
  const buffer = Buffer.alloc(2);
  buffer.writeUInt16LE(value);
  return buffer;
}

/** The schema the `json-schema-2020-12` scenario expects, keyword for keyword. */
const JSON_SCHEMA_2020_12 = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  $defs: {
    address: {
      $anchor: 'addressDef',
      type: 'object',
      properties: { street: { type: 'string' }, city: { type: 'string' } },
    },
  },
  properties: {
    name: { type: 'string' },
    address: { $ref: '#/$defs/address' },
    contactMethod: { type: 'string', enum: ['phone', 'email'] },
    phone: { type: 'string' },
    email: { type: 'string' },
  },
  allOf: [{ anyOf: [{ required: ['phone'] }, { required: ['email'] }] }],
  if: { properties: { contactMethod: { const: 'phone' } }, required: ['contactMethod'] },
  then: { required: ['phone'] },
  else: { required: ['email'] },
  additionalProperties: false,
} as const;

const NAME_SCHEMA = {
  type: 'object' as const,
  properties: { name: { type: 'string' as const } },
  required: ['name'],
};

/** A string parameter the client must mirror into the `Mcp-Param-Region` header (SEP-2243). */
const CUSTOM_HEADER_SCHEMA: Record<string, unknown> = {
  type: 'object',
  properties: { region: { type: 'string', 'x-mcp-header': 'Region' } },
  required: ['region'],
};

/** What one fixture instance shares between its per-request and per-session servers. */
interface FixtureState {
  name: string;
  cacheHints: ServerOptions['cacheHints'];
  codec: RequestStateCodec<RoundState>;
  /** Tell every listener (modern `subscriptions/listen` streams and legacy sessions) that a list changed. */
  listChanged(kind: 'tools' | 'prompts'): void;
}

/** The payload sealed into every `requestState` this fixture mints. */
interface RoundState {
  tool: string;
  round: number;
  answers?: Record<string, unknown>;
}

/**
 * Start an MCP server that implements the tools, resources and prompts the official conformance
 * suite (`@modelcontextprotocol/conformance`) names in its server scenarios, on a free loopback
 * port. One URL serves both eras: 2026-07-28 requests (per-request `_meta`, `server/discover`,
 * input-required results, `subscriptions/listen`) through the SDK's per-request handler, and
 * 2025-era traffic through sessionful Streamable HTTP (initialize, `Mcp-Session-Id`, GET stream,
 * DELETE, server→client requests), because sampling, elicitation and resource subscriptions
 * need a session there. Host and Origin must name a loopback host (DNS rebinding protection).
 */
export async function startConformanceUpstream(options: ConformanceUpstreamOptions = {}): Promise<ConformanceUpstream> {
  const legacySessions = new Map<string, LegacySession>();
  const state: FixtureState = {
    name: options.name ?? 'conformance-upstream',
    cacheHints: options.cacheHints,
    // A fresh key per instance: a state minted by another fixture must not verify here.
    codec: createRequestStateCodec<RoundState>({ key: randomBytes(32) }),
    listChanged(kind) {
      if (kind === 'tools') modern.notify.toolsChanged();
      else modern.notify.promptsChanged();
      for (const session of legacySessions.values()) {
        if (kind === 'tools') session.server.sendToolListChanged();
        else session.server.sendPromptListChanged();
      }
    },
  };
  const modern = createMcpHandler((context) => buildServer(state, context), {
    legacy: 'reject',
    onerror: () => {},
  });

  const handle = async (request: Request): Promise<Response> => {
    const rejected =
      hostHeaderValidationResponse(request, localhostAllowedHostnames()) ??
      originValidationResponse(request, localhostAllowedOrigins());
    if (rejected) return rejected;
    if (new URL(request.url).pathname !== MCP_PATH) return new Response('Not found', { status: 404 });
    if (await isLegacyRequest(request)) return serveLegacy(state, legacySessions, request);
    return modern.fetch(request);
  };

  const port = await freePort();
  const httpServer = createServer((req, res) => {
    bridge(handle, req, res, port).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(error));
    });
  });
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(port, '127.0.0.1', () => resolve());
  });

  return {
    url: `http://127.0.0.1:${port}${MCP_PATH}`,
    legacySessionCount: () => legacySessions.size,
    async close() {
      await modern.close();
      await Promise.all([...legacySessions.values()].map((session) => session.server.close().catch(() => {})));
      legacySessions.clear();
      await closeHttpServer(httpServer);
    },
  };
}

interface LegacySession {
  server: McpServer;
  transport: WebStandardStreamableHTTPServerTransport;
}

async function serveLegacy(
  state: FixtureState,
  sessions: Map<string, LegacySession>,
  request: Request,
): Promise<Response> {
  const sessionId = request.headers.get('mcp-session-id');
  if (sessionId) {
    const session = sessions.get(sessionId);
    // An unknown or terminated session is 404, so the client knows to initialize again.
    if (!session) return jsonRpcError(404, -32001, 'Session not found');
    return session.transport.handleRequest(request);
  }
  if (request.method !== 'POST') return jsonRpcError(400, -32000, 'Bad Request: Mcp-Session-Id header is required');
  const transport = new WebStandardStreamableHTTPServerTransport({
    sessionIdGenerator: () => randomUUID(),
    onsessioninitialized: (id) => {
      sessions.set(id, session);
    },
    onsessionclosed: (id) => {
      sessions.delete(id);
    },
  });
  const server = buildServer(state, { era: 'legacy' });
  const session: LegacySession = { server, transport };
  await server.connect(transport);
  // A request that did not start a session (anything but initialize) leaves nothing behind.
  const response = await transport.handleRequest(request);
  if (!transport.sessionId) await server.close();
  return response;
}

function jsonRpcError(status: number, code: number, message: string): Response {
  return Response.json({ jsonrpc: '2.0', id: null, error: { code, message } }, { status });
}

function buildServer(state: FixtureState, context: Pick<McpRequestContext, 'era'>): McpServer {
  const legacy = context.era === 'legacy';
  const server = new McpServer(
    { name: state.name, version: '1.0.0' },
    {
      capabilities: {
        tools: { listChanged: true },
        prompts: { listChanged: true },
        // Resource subscriptions are a 2025-era method; 2026-07-28 removed resources/subscribe.
        resources: legacy ? { subscribe: true, listChanged: true } : { listChanged: true },
        logging: {},
        completions: {},
      },
      requestState: { verify: (wire, ctx) => state.codec.verify(wire, ctx) },
      ...(state.cacheHints ? { cacheHints: state.cacheHints } : {}),
    },
  );
  registerContentTools(server);
  registerNotifyingTools(server);
  registerInteractiveTools(server, state);
  registerDiagnosticTools(server, state);
  registerResources(server, legacy);
  registerPrompts(server);
  return server;
}

function text(value: string) {
  return { content: [{ type: 'text' as const, text: value }] };
}

function registerContentTools(server: McpServer): void {
  server.registerTool('test_simple_text', { description: 'Returns a simple text response' }, () =>
    text('This is a simple text response for testing.'),
  );
  server.registerTool('test_image_content', { description: 'Returns a 1x1 PNG image' }, () => ({
    content: [{ type: 'image', data: RED_PIXEL_PNG, mimeType: 'image/png' }],
  }));
  server.registerTool('test_audio_content', { description: 'Returns a short WAV clip' }, () => ({
    content: [{ type: 'audio', data: SILENT_WAV, mimeType: 'audio/wav' }],
  }));
  server.registerTool('test_embedded_resource', { description: 'Returns an embedded text resource' }, () => ({
    content: [
      {
        type: 'resource',
        resource: { uri: 'test://embedded-resource', mimeType: 'text/plain', text: 'This is an embedded resource content.' },
      },
    ],
  }));
  server.registerTool('test_multiple_content_types', { description: 'Returns text, image and resource content' }, () => ({
    content: [
      { type: 'text', text: 'Multiple content types test:' },
      { type: 'image', data: RED_PIXEL_PNG, mimeType: 'image/png' },
      {
        type: 'resource',
        resource: {
          uri: 'test://mixed-content-resource',
          mimeType: 'application/json',
          text: JSON.stringify({ test: 'data', value: 123 }),
        },
      },
    ],
  }));
  server.registerTool('test_error_handling', { description: 'Always fails' }, () => {
    throw new Error('This tool intentionally returns an error for testing');
  });
  server.registerTool(
    'json_schema_2020_12_tool',
    { description: 'Tool with JSON Schema 2020-12 features', inputSchema: fromJsonSchema(JSON_SCHEMA_2020_12) },
    () => text('JSON Schema 2020-12 arguments accepted'),
  );
  server.registerTool(
    'test_custom_header',
    {
      description: 'Echoes a parameter that is mirrored into the Mcp-Param-Region header',
      inputSchema: fromJsonSchema(CUSTOM_HEADER_SCHEMA as JsonSchemaType),
    },
    (args) => text(`region=${String((args as { region?: unknown }).region)}`),
  );
}

function registerNotifyingTools(server: McpServer): void {
  server.registerTool('test_tool_with_logging', { description: 'Logs three messages while it runs' }, async (ctx) => {
    await ctx.mcpReq.log('info', 'Tool execution started');
    await delay(50);
    await ctx.mcpReq.log('info', 'Tool processing data');
    await delay(50);
    await ctx.mcpReq.log('info', 'Tool execution completed');
    return text('Tool with logging executed successfully');
  });
  server.registerTool('test_logging_tool', { description: 'Logs one message at info level' }, async (ctx) => {
    await ctx.mcpReq.log('info', 'test_logging_tool ran');
    return text('Logged one message');
  });
  server.registerTool('test_tool_with_progress', { description: 'Reports progress 0, 50, 100 of 100' }, async (ctx) => {
    const progressToken = ctx.mcpReq._meta?.progressToken;
    for (const progress of [0, 50, 100]) {
      if (progress > 0) await delay(50);
      if (progressToken !== undefined) {
        await ctx.mcpReq.notify({
          method: 'notifications/progress',
          params: { progressToken, progress, total: 100, message: `Completed step ${progress} of 100` },
        });
      }
    }
    return text('Tool with progress executed successfully');
  });
}

/**
 * Tools that need the client's input. Each is written once as a multi-round handler: on the
 * 2026-07-28 era the client answers the input-required result; on a 2025-era session the SDK turns
 * the same result into real server→client requests.
 */
function registerInteractiveTools(server: McpServer, state: FixtureState): void {
  server.registerTool(
    'test_sampling',
    { description: 'Asks the client to sample an LLM', inputSchema: z.object({ prompt: z.string() }) },
    ({ prompt }, ctx) => {
      const answer = inputResponse(ctx.mcpReq.inputResponses, 'sample');
      if (answer.kind !== 'sampling') {
        return inputRequired({
          inputRequests: {
            sample: inputRequired.createMessage({
              messages: [{ role: 'user', content: { type: 'text', text: prompt } }],
              maxTokens: 100,
            }),
          },
        });
      }
      return text(`LLM response: ${samplingText(answer.result)}`);
    },
  );
  server.registerTool(
    'test_elicitation',
    { description: 'Asks the user for a username and email', inputSchema: z.object({ message: z.string() }) },
    ({ message }, ctx) =>
      elicitOnce(ctx, 'user', {
        message,
        requestedSchema: {
          type: 'object',
          properties: {
            username: { type: 'string', description: "User's response" },
            email: { type: 'string', description: "User's email address" },
          },
          required: ['username', 'email'],
        },
        done: (answer) => `User response: action=${answer.action}, content=${JSON.stringify(answer.content ?? {})}`,
      }),
  );
  server.registerTool('test_elicitation_sep1034_defaults', { description: 'Elicits values with defaults' }, (ctx) =>
    elicitOnce(ctx, 'defaults', {
      message: 'Please review and update the form fields with defaults',
      requestedSchema: {
        type: 'object',
        properties: {
          name: { type: 'string', description: 'User name', default: 'John Doe' },
          age: { type: 'integer', description: 'User age', default: 30 },
          score: { type: 'number', description: 'User score', default: 95.5 },
          status: { type: 'string', description: 'User status', enum: ['active', 'inactive', 'pending'], default: 'active' },
          verified: { type: 'boolean', description: 'Verification status', default: true },
        },
      },
      done: elicitationCompleted,
    }),
  );
  server.registerTool('test_elicitation_sep1330_enums', { description: 'Elicits every enum variant' }, (ctx) =>
    elicitOnce(ctx, 'enums', {
      message: 'Please select options from the enum fields',
      requestedSchema: {
        type: 'object',
        properties: {
          untitledSingle: { type: 'string', description: 'Untitled single-select', enum: ['option1', 'option2', 'option3'] },
          titledSingle: {
            type: 'string',
            description: 'Titled single-select',
            oneOf: [
              { const: 'value1', title: 'First Option' },
              { const: 'value2', title: 'Second Option' },
              { const: 'value3', title: 'Third Option' },
            ],
          },
          legacyEnum: {
            type: 'string',
            description: 'Legacy titled enum',
            enum: ['opt1', 'opt2', 'opt3'],
            enumNames: ['Option One', 'Option Two', 'Option Three'],
          },
          untitledMulti: {
            type: 'array',
            description: 'Untitled multi-select',
            items: { type: 'string', enum: ['option1', 'option2', 'option3'] },
          },
          titledMulti: {
            type: 'array',
            description: 'Titled multi-select',
            items: {
              anyOf: [
                { const: 'value1', title: 'First Choice' },
                { const: 'value2', title: 'Second Choice' },
                { const: 'value3', title: 'Third Choice' },
              ],
            },
          },
        },
      },
      done: elicitationCompleted,
    }),
  );

  server.registerTool('test_input_required_result_elicitation', { description: 'Asks for a name, then greets' }, (ctx) => {
    const name = acceptedString(ctx, 'user_name', 'name');
    if (name === undefined) return inputRequired({ inputRequests: { user_name: askName('What is your name?') } });
    return text(`Hello, ${name}!`);
  });
  server.registerTool('test_input_required_result_sampling', { description: 'Asks the client to sample an LLM' }, (ctx) => {
    const answer = inputResponse(ctx.mcpReq.inputResponses, 'capital_question');
    if (answer.kind !== 'sampling') {
      return inputRequired({ inputRequests: { capital_question: capitalQuestion() } });
    }
    return text(`Sampling response: ${samplingText(answer.result)}`);
  });
  server.registerTool('test_input_required_result_list_roots', { description: "Lists the client's roots" }, (ctx) => {
    const answer = inputResponse(ctx.mcpReq.inputResponses, 'client_roots');
    if (answer.kind !== 'roots') return inputRequired({ inputRequests: { client_roots: inputRequired.listRoots() } });
    return text(`Client roots: ${answer.roots.map((root) => root.uri).join(', ') || '(none)'}`);
  });
  server.registerTool('test_input_required_result_request_state', { description: 'Round-trips requestState' }, async (ctx) => {
    const round = ctx.mcpReq.requestState<RoundState>();
    const answer = inputResponse(ctx.mcpReq.inputResponses, 'confirm');
    if (round?.tool !== 'request_state' || answer.kind !== 'elicit') {
      return inputRequired({
        inputRequests: {
          confirm: inputRequired.elicit({
            message: 'Please confirm',
            requestedSchema: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] },
          }),
        },
        requestState: await state.codec.mint({ tool: 'request_state', round: 1 }),
      });
    }
    return text(`state-ok: confirmation ${answer.action}`);
  });
  server.registerTool('test_input_required_result_multiple_inputs', { description: 'Asks for three inputs at once' }, async (ctx) => {
    const responses = ctx.mcpReq.inputResponses;
    const name = acceptedString(ctx, 'user_name', 'name');
    const greeting = inputResponse(responses, 'greeting');
    const roots = inputResponse(responses, 'client_roots');
    if (ctx.mcpReq.requestState() === undefined || name === undefined || greeting.kind !== 'sampling' || roots.kind !== 'roots') {
      return inputRequired({
        inputRequests: {
          user_name: askName('What is your name?'),
          greeting: inputRequired.createMessage({
            messages: [{ role: 'user', content: { type: 'text', text: 'Generate a greeting' } }],
            maxTokens: 50,
          }),
          client_roots: inputRequired.listRoots(),
        },
        requestState: await state.codec.mint({ tool: 'multiple_inputs', round: 1 }),
      });
    }
    return text(`${samplingText(greeting.result)} ${name} (roots: ${roots.roots.length})`);
  });
  server.registerTool('test_input_required_result_multi_round', { description: 'Asks two questions in two rounds' }, async (ctx) => {
    const round = ctx.mcpReq.requestState<RoundState>();
    const name = acceptedString(ctx, 'step1', 'name');
    if (round?.tool === 'multi_round' && round.round === 2) {
      const color = acceptedString(ctx, 'step2', 'color');
      if (color !== undefined) return text(`${String(round.answers?.name)} likes ${color}`);
    }
    if (round?.tool === 'multi_round' && (round.round === 2 || name !== undefined)) {
      return inputRequired({
        inputRequests: {
          step2: inputRequired.elicit({
            message: 'Step 2: What is your favorite color?',
            requestedSchema: { type: 'object', properties: { color: { type: 'string' } }, required: ['color'] },
          }),
        },
        requestState: await state.codec.mint({
          tool: 'multi_round',
          round: 2,
          answers: { name: name ?? round.answers?.name },
        }),
      });
    }
    return inputRequired({
      inputRequests: { step1: askName('Step 1: What is your name?') },
      requestState: await state.codec.mint({ tool: 'multi_round', round: 1 }),
    });
  });
  server.registerTool('test_input_required_result_tampered_state', { description: 'Signs its requestState' }, async (ctx) => {
    // A tampered state never reaches here: the codec's verify hook rejects it with -32602.
    const round = ctx.mcpReq.requestState<RoundState>();
    const name = acceptedString(ctx, 'user_name', 'name');
    if (round?.tool === 'tampered_state' && name !== undefined) return text(`state verified for ${name}`);
    return inputRequired({
      inputRequests: { user_name: askName('What is your name?') },
      requestState: await state.codec.mint({ tool: 'tampered_state', round: 1 }),
    });
  });
  server.registerTool(
    'test_input_required_result_capabilities',
    { description: 'Asks only for inputs the client declared' },
    (ctx) => {
      // The SDK's envelope type is empty; the keys are the reserved `_meta` names.
      const envelope = (ctx.mcpReq.envelope ?? {}) as Record<string, ClientCapabilities | undefined>;
      const declared = envelope[CLIENT_CAPABILITIES_META_KEY] ?? {};
      const responses = ctx.mcpReq.inputResponses ?? {};
      if (Object.keys(responses).length > 0) return text(`Received ${Object.keys(responses).join(', ')}`);
      const inputRequests: Record<string, InputRequest> = {};
      if (declared.sampling) inputRequests.capital_question = capitalQuestion();
      if (declared.elicitation) inputRequests.user_name = askName('What is your name?');
      if (declared.roots) inputRequests.client_roots = inputRequired.listRoots();
      if (Object.keys(inputRequests).length === 0) return text('The client declared no capability to ask through');
      return inputRequired({ inputRequests });
    },
  );
}

/** Tools the `server-stateless` scenario calls to exercise its own checks. */
function registerDiagnosticTools(server: McpServer, state: FixtureState): void {
  // Needs sampling; the SDK answers -32021 when the request did not declare it.
  server.registerTool('test_missing_capability', { description: 'Needs the sampling capability' }, (ctx) => {
    const answer = inputResponse(ctx.mcpReq.inputResponses, 'capital_question');
    if (answer.kind !== 'sampling') return inputRequired({ inputRequests: { capital_question: capitalQuestion() } });
    return text(`Sampling response: ${samplingText(answer.result)}`);
  });
  server.registerTool('test_streaming_elicitation', { description: 'Reports progress, then asks for a name' }, async (ctx) => {
    const progressToken = ctx.mcpReq._meta?.progressToken;
    if (progressToken !== undefined) {
      await ctx.mcpReq.notify({ method: 'notifications/progress', params: { progressToken, progress: 1, total: 2 } });
    }
    const name = acceptedString(ctx, 'user_name', 'name');
    if (name === undefined) return inputRequired({ inputRequests: { user_name: askName('What is your name?') } });
    return text(`Hello, ${name}!`);
  });
  server.registerTool('test_trigger_tool_change', { description: 'Announces a change of the tool list' }, () => {
    state.listChanged('tools');
    return text('tools/list_changed published');
  });
  server.registerTool('test_trigger_prompt_change', { description: 'Announces a change of the prompt list' }, () => {
    state.listChanged('prompts');
    return text('prompts/list_changed published');
  });
}

function registerResources(server: McpServer, legacy: boolean): void {
  server.registerResource(
    'static-text',
    'test://static-text',
    { description: 'A static text resource', mimeType: 'text/plain' },
    (uri) => ({
      contents: [{ uri: uri.href, mimeType: 'text/plain', text: 'This is the content of the static text resource.' }],
    }),
  );
  server.registerResource(
    'static-binary',
    'test://static-binary',
    { description: 'A static binary resource (PNG)', mimeType: 'image/png' },
    (uri) => ({ contents: [{ uri: uri.href, mimeType: 'image/png', blob: RED_PIXEL_PNG }] }),
  );
  server.registerResource(
    'watched-resource',
    'test://watched-resource',
    { description: 'A resource clients may subscribe to', mimeType: 'text/plain' },
    (uri) => ({ contents: [{ uri: uri.href, mimeType: 'text/plain', text: 'Watched resource content.' }] }),
  );
  server.registerResource(
    'template-data',
    new ResourceTemplate('test://template/{id}/data', { list: undefined }),
    { description: 'Data for one id', mimeType: 'application/json' },
    (uri, variables) => {
      const id = String(variables.id);
      return {
        contents: [
          {
            uri: uri.href,
            mimeType: 'application/json',
            text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }),
          },
        ],
      };
    },
  );
  if (legacy) {
    const subscriptions = new Set<string>();
    server.server.setRequestHandler('resources/subscribe', (request) => {
      subscriptions.add(request.params.uri);
      return {};
    });
    server.server.setRequestHandler('resources/unsubscribe', (request) => {
      subscriptions.delete(request.params.uri);
      return {};
    });
  }
}

function registerPrompts(server: McpServer): void {
  server.registerPrompt('test_simple_prompt', { description: 'A prompt without arguments' }, () => ({
    messages: [{ role: 'user', content: { type: 'text', text: 'This is a simple prompt for testing.' } }],
  }));
  server.registerPrompt(
    'test_prompt_with_arguments',
    {
      description: 'A prompt with two arguments',
      argsSchema: z.object({
        arg1: completable(z.string().describe('First test argument'), (value) =>
          ['paris', 'park', 'party'].filter((candidate) => candidate.startsWith(value ?? '')),
        ),
        arg2: z.string().describe('Second test argument'),
      }),
    },
    ({ arg1, arg2 }) => ({
      messages: [{ role: 'user', content: { type: 'text', text: `Prompt with arguments: arg1='${arg1}', arg2='${arg2}'` } }],
    }),
  );
  server.registerPrompt(
    'test_prompt_with_embedded_resource',
    {
      description: 'A prompt embedding a resource',
      argsSchema: z.object({ resourceUri: z.string().describe('URI of the resource to embed') }),
    },
    ({ resourceUri }) => ({
      messages: [
        {
          role: 'user',
          content: {
            type: 'resource',
            resource: { uri: resourceUri, mimeType: 'text/plain', text: 'Embedded resource content for testing.' },
          },
        },
        { role: 'user', content: { type: 'text', text: 'Please process the embedded resource above.' } },
      ],
    }),
  );
  server.registerPrompt('test_prompt_with_image', { description: 'A prompt with an image' }, () => ({
    messages: [
      { role: 'user', content: { type: 'image', data: RED_PIXEL_PNG, mimeType: 'image/png' } },
      { role: 'user', content: { type: 'text', text: 'Please analyze the image above.' } },
    ],
  }));
  server.registerPrompt('test_input_required_result_prompt', { description: 'Asks for context first' }, (ctx) => {
    const context = acceptedString(ctx, 'user_context', 'context');
    if (context === undefined) {
      return inputRequired({
        inputRequests: {
          user_context: inputRequired.elicit({
            message: 'What context should the prompt use?',
            requestedSchema: { type: 'object', properties: { context: { type: 'string' } }, required: ['context'] },
          }),
        },
      });
    }
    return { messages: [{ role: 'user', content: { type: 'text', text: `Prompt using context: ${context}` } }] };
  });
}

function askName(message: string): InputRequest {
  return inputRequired.elicit({ message, requestedSchema: NAME_SCHEMA });
}

function capitalQuestion(): InputRequest {
  return inputRequired.createMessage({
    messages: [{ role: 'user', content: { type: 'text', text: 'What is the capital of France?' } }],
    maxTokens: 100,
  });
}

/** A string field of an accepted elicitation answer; anything else (missing, declined, malformed) is `undefined`. */
function acceptedString(ctx: ServerContext, key: string, field: string): string | undefined {
  const answer = inputResponse(ctx.mcpReq.inputResponses, key);
  if (answer.kind !== 'elicit' || answer.action !== 'accept') return undefined;
  const value = answer.content?.[field];
  return typeof value === 'string' ? value : undefined;
}

interface ElicitationAnswer {
  action: string;
  content?: Record<string, unknown>;
}

/** One elicitation round: ask when the answer is missing, finish with `done` on any answer (accept, decline, cancel). */
function elicitOnce(
  ctx: ServerContext,
  key: string,
  request: { message: string; requestedSchema: Record<string, unknown>; done(answer: ElicitationAnswer): string },
): InputRequiredResult | ReturnType<typeof text> {
  const answer = inputResponse(ctx.mcpReq.inputResponses, key);
  if (answer.kind === 'elicit') return text(request.done(answer));
  return inputRequired({
    inputRequests: {
      // Built by hand: the scenarios' schemas (defaults, enumNames, titled multi-select) are wider
      // than the typed `inputRequired.elicit` parameter, and must reach the client unchanged.
      [key]: {
        method: 'elicitation/create',
        params: { mode: 'form', message: request.message, requestedSchema: request.requestedSchema },
      } as InputRequest,
    },
  });
}

function elicitationCompleted(answer: ElicitationAnswer): string {
  return `Elicitation completed: action=${answer.action}, content=${JSON.stringify(answer.content ?? {})}`;
}

function samplingText(result: { content: unknown }): string {
  const blocks = Array.isArray(result.content) ? result.content : [result.content];
  return blocks
    .map((block) => (block && typeof block === 'object' && 'text' in block ? String(block.text) : ''))
    .join('');
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Serve one Node request with a fetch-style handler, streaming the response body as it is produced (also used by bench/echo-upstream.ts). */
export async function bridge(
  handle: (request: Request) => Promise<Response>,
  req: IncomingMessage,
  res: ServerResponse,
  port: number,
): Promise<void> {
  const abort = new AbortController();
  res.on('close', () => abort.abort());
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (Array.isArray(value)) for (const item of value) headers.append(name, item);
    else if (value !== undefined) headers.set(name, value);
  }
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  // The URL's authority is our own address; the Host header the client sent is kept as is for validation.
  const request = new Request(`http://127.0.0.1:${port}${req.url ?? '/'}`, {
    method: req.method ?? 'GET',
    headers,
    body: hasBody ? (Readable.toWeb(req) as ReadableStream<Uint8Array>) : undefined,
    signal: abort.signal,
    ...(hasBody ? { duplex: 'half' } : {}),
  } as RequestInit);
  const response = await handle(request);
  res.writeHead(response.status, [...response.headers].flat());
  if (!response.body) {
    res.end();
    return;
  }
  res.flushHeaders();
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      res.write(value);
    }
  } catch {
    // The client went away mid-stream.
  } finally {
    res.end();
  }
}

function closeHttpServer(server: HttpServer): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';

import { freePort } from './free-port.js';

/**
 * An MCP 2026-07-28 server written by hand (raw JSON-RPC over Streamable HTTP, no SDK) that
 * implements the tasks extension, `io.modelcontextprotocol/tasks` (SEP-2663), and
 * `subscriptions/listen` with resource subscriptions and task status notifications, so the
 * gateway can be tested against what the SDK does not implement.
 */
export interface TasksUpstream {
  /** `http://127.0.0.1:<port>/mcp`. */
  readonly url: string;
  /** Every JSON-RPC request received: its method, and the user the gateway said it is for (`X-Upstream-User`). */
  readonly requests: readonly { method: string; user: string | undefined }[];
  /** The `subscriptions/listen` streams open right now, with their user and honored filter. */
  listeners(): { user: string | undefined; filter: ListenFilter }[];
  /** Tells every stream that asked for `resourceSubscriptions` containing `uri` that it changed. */
  touch(uri: string): void;
  /** Tells every stream that asked for `toolsListChanged` that the tool list changed. */
  changeTools(): void;
  close(): Promise<void>;
}

/** The filter of a `subscriptions/listen` request (MCP 2026-07-28 Basic/Patterns §Subscriptions, and SEP-2663 `taskIds`). */
export interface ListenFilter {
  toolsListChanged?: boolean;
  promptsListChanged?: boolean;
  resourcesListChanged?: boolean;
  resourceSubscriptions?: string[];
  taskIds?: string[];
}

/** The extension identifier of SEP-2663. */
export const TASKS_EXTENSION = 'io.modelcontextprotocol/tasks';
const VERSION = '2026-07-28';
const META = {
  version: 'io.modelcontextprotocol/protocolVersion',
  capabilities: 'io.modelcontextprotocol/clientCapabilities',
  serverInfo: 'io.modelcontextprotocol/serverInfo',
  subscriptionId: 'io.modelcontextprotocol/subscriptionId',
} as const;
const ERRORS = { parse: -32700, invalidRequest: -32600, methodNotFound: -32601, invalidParams: -32602, internal: -32603, headerMismatch: -32020, missingCapability: -32021, unsupportedVersion: -32022 } as const;
const SERVER_INFO = { name: 'tasks-upstream', version: '1.0.0' };
const TASK_TTL_MS = 60_000;
const POLL_INTERVAL_MS = 50;

/** Methods whose `Mcp-Name` header mirrors a body field (SEP-2243, and SEP-2663 §Routing Headers). */
const NAME_FIELD: Record<string, 'name' | 'uri' | 'taskId'> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
  'tasks/get': 'taskId',
  'tasks/update': 'taskId',
  'tasks/cancel': 'taskId',
};

type Json = Record<string, unknown>;
type Status = 'working' | 'input_required' | 'completed' | 'failed' | 'cancelled';

interface TaskRecord {
  taskId: string;
  owner: string;
  status: Status;
  statusMessage?: string;
  createdAt: string;
  lastUpdatedAt: string;
  result?: Json;
  error?: Json;
  /** Outstanding input requests by key; answered keys are removed. */
  inputRequests: Map<string, Json>;
  answers: Map<string, Json>;
  timer?: NodeJS.Timeout;
  /** Runs once every input request is answered. */
  resume?: (answers: Map<string, Json>) => void;
}

interface Listener {
  id: unknown;
  user: string | undefined;
  filter: ListenFilter;
  res: ServerResponse;
}

class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
    readonly status = 200,
  ) {
    super(message);
  }
}

const TOOLS = [
  { name: 'greet', description: 'Greets someone, synchronously.', inputSchema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] } },
  {
    name: 'slow_compute',
    description: 'Sleeps `seconds` seconds, then answers; a task for clients of the tasks extension.',
    inputSchema: { type: 'object', properties: { seconds: { type: 'number' }, label: { type: 'string' } } },
  },
  { name: 'failing_job', description: 'A task that ends with a tool error; needs the tasks extension.', inputSchema: { type: 'object' } },
  { name: 'protocol_error_job', description: 'A task that fails with a JSON-RPC error.', inputSchema: { type: 'object' } },
  { name: 'confirm_delete', description: 'A task that asks for a confirmation before it finishes.', inputSchema: { type: 'object', properties: { path: { type: 'string' } } } },
  { name: 'multi_input', description: 'A task that asks two questions at once.', inputSchema: { type: 'object' } },
  { name: 'whoami', description: 'Names the user the gateway sent the request for.', inputSchema: { type: 'object' } },
];

const RESOURCES = [
  { uri: 'tk://note/1', name: 'note-1', mimeType: 'text/plain' },
  { uri: 'tk://note/2', name: 'note-2', mimeType: 'text/plain' },
];

/** Starts the fixture on a free loopback port. */
export async function startTasksUpstream(): Promise<TasksUpstream> {
  const requests: { method: string; user: string | undefined }[] = [];
  const tasks = new Map<string, TaskRecord>();
  const listeners = new Set<Listener>();

  function publish(method: string, params: Json, wants: (filter: ListenFilter, user: string | undefined) => boolean): void {
    for (const listener of listeners) {
      if (!wants(listener.filter, listener.user)) continue;
      writeEvent(listener.res, { jsonrpc: '2.0', method, params: { ...params, _meta: { [META.subscriptionId]: listener.id } } });
    }
  }

  function detailed(task: TaskRecord): Json {
    return {
      taskId: task.taskId,
      status: task.status,
      ...(task.statusMessage !== undefined ? { statusMessage: task.statusMessage } : {}),
      createdAt: task.createdAt,
      lastUpdatedAt: task.lastUpdatedAt,
      ttlMs: TASK_TTL_MS,
      pollIntervalMs: POLL_INTERVAL_MS,
      ...(task.status === 'input_required' ? { inputRequests: Object.fromEntries(task.inputRequests) } : {}),
      ...(task.status === 'completed' && task.result ? { result: task.result } : {}),
      ...(task.status === 'failed' && task.error ? { error: task.error } : {}),
    };
  }

  function settle(task: TaskRecord, status: Status, outcome: { result?: Json; error?: Json; statusMessage?: string; inputRequests?: Record<string, Json> } = {}): void {
    if (task.status === 'completed' || task.status === 'failed' || task.status === 'cancelled') return;
    clearTimeout(task.timer);
    task.status = status;
    task.lastUpdatedAt = new Date().toISOString();
    if (outcome.result) task.result = outcome.result;
    if (outcome.error) task.error = outcome.error;
    if (outcome.statusMessage !== undefined) task.statusMessage = outcome.statusMessage;
    for (const [key, request] of Object.entries(outcome.inputRequests ?? {})) task.inputRequests.set(key, request);
    publish('notifications/tasks', detailed(task), (filter, user) => (user ?? '') === task.owner && (filter.taskIds ?? []).includes(task.taskId));
  }

  function createTask(owner: string): TaskRecord {
    const now = new Date().toISOString();
    const task: TaskRecord = { taskId: randomUUID(), owner, status: 'working', createdAt: now, lastUpdatedAt: now, inputRequests: new Map(), answers: new Map() };
    tasks.set(task.taskId, task);
    return task;
  }

  function taskOf(params: Json, user: string | undefined): TaskRecord {
    const task = typeof params['taskId'] === 'string' ? tasks.get(params['taskId']) : undefined;
    // A task is bound to the user it was created for: anyone else is told it does not exist.
    if (!task || task.owner !== (user ?? '')) throw new RpcError(ERRORS.invalidParams, `Unknown task: ${String(params['taskId'])}`);
    return task;
  }

  const text = (value: string, isError = false): Json => ({ content: [{ type: 'text', text: value }], ...(isError ? { isError: true } : {}) });
  const ask = (message: string, field: string): Json => ({
    method: 'elicitation/create',
    params: { mode: 'form', message, requestedSchema: { type: 'object', properties: { [field]: { type: 'string' } }, required: [field] } },
  });
  const answerOf = (answers: Map<string, Json>, key: string, field: string): string => {
    const answer = answers.get(key) as { action?: string; content?: Json } | undefined;
    return answer?.action === 'accept' ? String(answer.content?.[field] ?? '') : `(${answer?.action ?? 'none'})`;
  };

  /** Starts the work of a task-supporting tool on `task`. */
  function run(tool: string, args: Json, task: TaskRecord): void {
    switch (tool) {
      case 'slow_compute':
        task.timer = setTimeout(() => settle(task, 'completed', { result: text(`computed ${String(args['label'] ?? '')}`) }), Number(args['seconds'] ?? 0) * 1000);
        return;
      case 'failing_job':
        task.timer = setTimeout(() => settle(task, 'completed', { result: text('the job failed', true) }), 10);
        return;
      case 'protocol_error_job':
        task.timer = setTimeout(() => settle(task, 'failed', { error: { code: ERRORS.internal, message: 'the job crashed' }, statusMessage: 'Tool execution failed' }), 10);
        return;
      case 'confirm_delete':
        task.resume = (answers) => settle(task, 'completed', { result: text(`delete ${String(args['path'] ?? '')}: ${answerOf(answers, 'confirm', 'ok')}`) });
        settle(task, 'input_required', { inputRequests: { confirm: ask('Delete it?', 'ok') } });
        return;
      case 'multi_input':
        task.resume = (answers) => settle(task, 'completed', { result: text(`${answerOf(answers, 'first', 'name')} / ${answerOf(answers, 'second', 'color')}`) });
        settle(task, 'input_required', { inputRequests: { first: ask('Your name?', 'name'), second: ask('Your colour?', 'color') } });
        return;
    }
  }

  async function callTool(params: Json, user: string | undefined, withTasks: boolean): Promise<Json> {
    const name = params['name'];
    const args = (params['arguments'] ?? {}) as Json;
    switch (name) {
      case 'greet':
        return text(`Hello, ${String(args['name'] ?? '')}!`);
      case 'whoami':
        return text(user ?? 'nobody');
      case 'slow_compute':
      case 'failing_job':
      case 'protocol_error_job':
      case 'confirm_delete':
      case 'multi_input': {
        if (!withTasks) {
          if (name !== 'slow_compute') throw new RpcError(ERRORS.missingCapability, 'Missing required client capability', { requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } } });
          await new Promise((resolve) => setTimeout(resolve, Number(args['seconds'] ?? 0) * 1000));
          return text(`computed ${String(args['label'] ?? '')}`);
        }
        const task = createTask(user ?? '');
        run(name, args, task);
        const { inputRequests: _pending, result: _result, error: _error, ...created } = detailed(task);
        return { ...created, resultType: 'task' };
      }
      default:
        throw new RpcError(ERRORS.invalidParams, `Unknown tool: ${String(name)}`);
    }
  }

  async function dispatch(method: string, params: Json, user: string | undefined, withTasks: boolean): Promise<Json> {
    const needsTasks = () => {
      if (!withTasks) throw new RpcError(ERRORS.missingCapability, 'Missing required client capability', { requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } } });
    };
    switch (method) {
      case 'server/discover':
        return {
          supportedVersions: [VERSION],
          capabilities: { tools: { listChanged: true }, resources: { subscribe: true, listChanged: true }, extensions: { [TASKS_EXTENSION]: {} } },
        };
      case 'ping':
        return {};
      case 'tools/list':
        return { tools: TOOLS };
      case 'tools/call':
        return callTool(params, user, withTasks);
      case 'resources/list':
        return { resources: RESOURCES };
      case 'resources/read': {
        const resource = RESOURCES.find((candidate) => candidate.uri === params['uri']);
        if (!resource) throw new RpcError(ERRORS.invalidParams, `Unknown resource: ${String(params['uri'])}`);
        return { contents: [{ uri: resource.uri, mimeType: 'text/plain', text: `${resource.name} for ${user ?? 'nobody'}` }] };
      }
      case 'tasks/get':
        needsTasks();
        return detailed(taskOf(params, user));
      case 'tasks/update': {
        needsTasks();
        const task = taskOf(params, user);
        const responses = params['inputResponses'];
        if (typeof responses !== 'object' || responses === null) throw new RpcError(ERRORS.invalidParams, 'inputResponses must be an object');
        for (const [key, answer] of Object.entries(responses as Json)) {
          // Keys not outstanding (never issued, answered, superseded) are ignored, as SEP-2663 asks.
          if (!task.inputRequests.delete(key)) continue;
          task.answers.set(key, answer as Json);
        }
        if (task.status === 'input_required' && task.inputRequests.size === 0) {
          task.status = 'working';
          task.resume?.(task.answers);
        }
        return {};
      }
      case 'tasks/cancel': {
        needsTasks();
        settle(taskOf(params, user), 'cancelled', { statusMessage: 'Cancelled by the client' });
        return {};
      }
      default:
        throw new RpcError(ERRORS.methodNotFound, 'Method not found');
    }
  }

  function listen(message: Json, params: Json, user: string | undefined, withTasks: boolean, req: IncomingMessage, res: ServerResponse): void {
    const requested = params['notifications'] as ListenFilter | undefined;
    if (typeof requested !== 'object' || requested === null) throw new RpcError(ERRORS.invalidParams, "Invalid params: 'notifications' is required");
    if (requested.taskIds !== undefined && !withTasks) {
      throw new RpcError(ERRORS.missingCapability, 'Missing required client capability', { requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } } });
    }
    // This server has no prompts: the acknowledgment leaves out what it cannot deliver.
    const filter: ListenFilter = {
      ...(requested.toolsListChanged ? { toolsListChanged: true } : {}),
      ...(requested.resourcesListChanged ? { resourcesListChanged: true } : {}),
      ...(requested.resourceSubscriptions?.length ? { resourceSubscriptions: [...requested.resourceSubscriptions] } : {}),
      ...(requested.taskIds?.length ? { taskIds: [...requested.taskIds] } : {}),
    };
    const listener: Listener = { id: message['id'], user, filter, res };
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    writeEvent(res, { jsonrpc: '2.0', method: 'notifications/subscriptions/acknowledged', params: { notifications: filter, _meta: { [META.subscriptionId]: listener.id } } });
    listeners.add(listener);
    const end = () => listeners.delete(listener);
    req.on('close', end);
    res.on('close', end);
  }

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (new URL(req.url ?? '/', 'http://x').pathname !== '/mcp') return void res.writeHead(404).end();
    if (req.method !== 'POST') return void res.writeHead(405, { Allow: 'POST' }).end();
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    let message: Json;
    try {
      message = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json;
    } catch {
      return reply(res, null, new RpcError(ERRORS.parse, 'Parse error', undefined, 400));
    }
    const method = typeof message['method'] === 'string' ? message['method'] : '';
    const params = (message['params'] ?? {}) as Json;
    const meta = (params['_meta'] ?? {}) as Json;
    const user = req.headers['x-upstream-user'] as string | undefined;
    if (!('id' in message)) return void res.writeHead(202).end();
    requests.push({ method, user });
    try {
      if (meta[META.version] !== VERSION) throw new RpcError(ERRORS.unsupportedVersion, 'Unsupported protocol version', { supported: [VERSION], requested: meta[META.version] ?? null }, 400);
      checkHeaders(req, method, params);
      const capabilities = (meta[META.capabilities] ?? {}) as { extensions?: Record<string, unknown> };
      const withTasks = capabilities.extensions?.[TASKS_EXTENSION] !== undefined;
      if (method === 'subscriptions/listen') return listen(message, params, user, withTasks, req, res);
      const result = await dispatch(method, params, user, withTasks);
      reply(res, message['id'], { resultType: 'complete', ...result, _meta: { [META.serverInfo]: SERVER_INFO } });
    } catch (error) {
      reply(res, message['id'], error instanceof RpcError ? error : new RpcError(ERRORS.internal, 'Internal error'));
    }
  }

  const port = await freePort();
  const http: HttpServer = createServer((req, res) => {
    serve(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve) => http.listen(port, '127.0.0.1', resolve));

  return {
    url: `http://127.0.0.1:${port}/mcp`,
    requests,
    listeners: () => [...listeners].map(({ user, filter }) => ({ user, filter })),
    touch: (uri) => publish('notifications/resources/updated', { uri }, (filter) => (filter.resourceSubscriptions ?? []).includes(uri)),
    changeTools: () => publish('notifications/tools/list_changed', {}, (filter) => filter.toolsListChanged === true),
    async close() {
      for (const task of tasks.values()) clearTimeout(task.timer);
      for (const listener of listeners) listener.res.end();
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      });
    },
  };
}

/** SEP-2243: `MCP-Protocol-Version`, `Mcp-Method` and (where the method names something) `Mcp-Name` must match the body. */
function checkHeaders(req: IncomingMessage, method: string, params: Json): void {
  const mismatch = (what: string) => new RpcError(ERRORS.headerMismatch, `Header mismatch: ${what}`, undefined, 400);
  if (req.headers['mcp-protocol-version'] !== VERSION) throw mismatch('MCP-Protocol-Version');
  if (req.headers['mcp-method'] !== method) throw mismatch('Mcp-Method');
  const field = NAME_FIELD[method];
  if (field !== undefined && req.headers['mcp-name'] !== params[field]) throw mismatch('Mcp-Name');
}

function reply(res: ServerResponse, id: unknown, outcome: Json | RpcError): void {
  const body =
    outcome instanceof RpcError
      ? { jsonrpc: '2.0', id, error: { code: outcome.code, message: outcome.message, ...(outcome.data !== undefined ? { data: outcome.data } : {}) } }
      : { jsonrpc: '2.0', id, result: outcome };
  res.writeHead(outcome instanceof RpcError ? outcome.status : 200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

function writeEvent(res: ServerResponse, message: Json): void {
  res.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
}

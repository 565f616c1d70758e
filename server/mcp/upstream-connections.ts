import {
  Client,
  ProtocolError,
  ProtocolErrorCode,
  SdkError,
  SdkErrorCode,
  SdkHttpError,
  StreamableHTTPClientTransport,
  UnauthorizedError,
  type ClientCapabilities,
  type ClientContext,
  type JSONRPCMessage,
  type McpSubscription,
  type PriorDiscovery,
} from '@modelcontextprotocol/client';

import type { Logger } from '../log.js';
import { challengeOf, insufficientScopeOf, type UpstreamChallenge } from './bearer-challenge.js';
import { JsonRpcError } from './json-rpc.js';
import type { McpUpstream } from './types.js';
import { recordUpstreamRequest } from '../metrics.js';
import { traceUpstreamRequest } from '../tracing.js';

/** A server→client request an upstream sent (legacy era), to be answered by the gateway's own client. */
export interface UpstreamRequest {
  method: 'elicitation/create' | 'sampling/createMessage' | 'roots/list';
  params: Record<string, unknown> | undefined;
}

/** What {@link UpstreamConnections} needs from whoever owns it (a legacy session, or one modern request). */
export interface UpstreamConnectionsOptions {
  /** How the gateway introduces itself to upstreams. */
  clientInfo: { name: string; version: string };
  log: Logger;
  /** Each upstream's era, learnt once and shared by every owner. */
  eras: UpstreamEras;
  /** Extra headers for one HTTP request to `upstream`; called for every request. */
  headers(upstream: McpUpstream, request?: { method: string; url: string }): Promise<Record<string, string>>;
  /**
   * The upstream answered HTTP 401 to a request sent with `sent` headers; `retried` tells whether
   * it was already the retry. Resolving true sends the request once more with fresh headers.
   */
  unauthorized?(upstream: McpUpstream, sent: Record<string, string>, retried: boolean, challenge?: UpstreamChallenge): Promise<boolean>;
  /**
   * The upstream answered HTTP 403 `insufficient_scope` naming `scopes` (step-up) to a request sent
   * with `sent`. Resolving true sends the request once more; what it throws (a URL elicitation)
   * reaches the owner as the cause of an {@link UpstreamCredentialsError}.
   */
  insufficientScope?(upstream: McpUpstream, sent: Record<string, string>, scopes: string[]): Promise<boolean>;
  /**
   * The capabilities the gateway declares to upstreams: those of the MCP client it serves, so an
   * upstream asks only for what that client can answer.
   */
  capabilities(): ClientCapabilities;
  /** A notification an upstream sent (list changes, resource updates, log messages). */
  onNotification?(upstream: McpUpstream, method: string, params: Record<string, unknown> | undefined): void;
  /** A server→client request an upstream sent; the answer goes back to it. */
  onRequest?(upstream: McpUpstream, request: UpstreamRequest, signal: AbortSignal): Promise<Record<string, unknown>>;
  /** Bound on the connect round trips. */
  connectTimeoutMs: number;
}

interface Connection {
  url: string;
  ready: Promise<{ client: Client; transport: StreamableHTTPClientTransport }>;
  /** A 2026-07-28 upstream's `subscriptions/listen` stream for each resource URI subscribed to. */
  resourceStreams: Map<string, Promise<McpSubscription>>;
}

/** The extension identifier of MCP Tasks (SEP-2663). */
export const TASKS_EXTENSION = 'io.modelcontextprotocol/tasks';

/**
 * The `_meta` key under which a `CreateTaskResult` (SEP-2663 §Task Creation) crosses the SDK v2
 * client, whose result decoding refuses `resultType: "task"`; {@link createdTaskOf} takes it out.
 */
const CARRIED_TASK_META_KEY = 'consent-gateway/createTaskResult';

/** How long an upstream gets to acknowledge the end of its session before the connection is dropped anyway. */
const TERMINATE_TIMEOUT_MS = 2_000;

/** Upstream notifications relayed to the gateway's client. */
const RELAYED_NOTIFICATIONS = [
  'notifications/tools/list_changed',
  'notifications/prompts/list_changed',
  'notifications/resources/list_changed',
  'notifications/resources/updated',
  'notifications/message',
] as const;

/**
 * What the gateway learnt about each upstream URL's protocol era (MCP 2026-07-28 `server/discover`,
 * or the 2025 `initialize` handshake): a cache, so a lost entry only costs one probe.
 */
export class UpstreamEras {
  readonly #known = new Map<string, PriorDiscovery>();
  readonly #legs = new Map<string, string | null>();

  /** The verdict learnt for `url`, if any. */
  get(url: string): PriorDiscovery | undefined {
    return this.#known.get(url);
  }

  /**
   * What a 2025-era connection to `url` found of its sessions: the protocol version it speaks
   * without one (it assigned no `Mcp-Session-Id`), `null` when it keeps sessions; `undefined` when
   * no 2025 connection to it was made.
   */
  legacyLeg(url: string): string | null | undefined {
    return this.#legs.get(url);
  }

  /** Remembers the era `client` negotiated with `url` over `transport`. */
  learn(url: string, client: Client, transport: StreamableHTTPClientTransport): void {
    const discover = client.getDiscoverResult();
    const modern = client.getProtocolEra() === 'modern' && discover;
    this.#known.set(url, modern ? { kind: 'modern', discover } : { kind: 'legacy' });
    if (!modern) this.#legs.set(url, transport.sessionId === undefined ? (transport.protocolVersion ?? null) : null);
  }

  /** Forgets `url` (it failed in a way a stale verdict could explain). */
  forget(url: string): void {
    this.#known.delete(url);
    this.#legs.delete(url);
  }
}

/**
 * The upstream MCP connections of one owner: at most one SDK v2 `Client` per upstream, opened on
 * first use in the era the upstream speaks, closed (a legacy upstream session ended with HTTP
 * DELETE, MCP 2025-11-25 Basic/Transports §Session Management) when the owner ends.
 */
export class UpstreamConnections {
  readonly #options: UpstreamConnectionsOptions;
  readonly #connections = new Map<string, Connection>();
  #closed = false;

  constructor(options: UpstreamConnectionsOptions) {
    this.#options = options;
  }

  /** Number of upstream connections open or being opened. */
  get size(): number {
    return this.#connections.size;
  }

  /**
   * Runs `action` with the connected client of `upstream`. A failure other than a JSON-RPC error
   * answered by the upstream drops the connection so the next use opens a new one; when an
   * existing connection fails because the upstream forgot its session (HTTP 404), the action is
   * retried once on a new connection, since the upstream did not process the request.
   */
  async use<T>(upstream: McpUpstream, action: (client: Client) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt += 1) {
      let connection = this.#connections.get(upstream.name);
      const reused = connection?.url === upstream.url;
      if (connection && !reused) void this.#drop(upstream.name, connection);
      if (!connection || !reused) connection = this.#open(upstream);
      const { client } = await connection.ready;
      try {
        return await action(client);
      } catch (error) {
        if (isJsonRpcErrorFromUpstream(error) || isAbort(error)) throw error;
        await this.#drop(upstream.name, connection);
        this.#options.eras.forget(upstream.url);
        const sessionLost = error instanceof SdkHttpError && error.status === 404;
        if (!sessionLost || !reused || attempt > 0) throw error;
        this.#options.log.info('upstream session expired; reconnecting', { upstream: upstream.name });
      }
    }
  }

  /**
   * Asks `upstream` to tell this owner when the resource `uri` changes, in the era it speaks:
   * `resources/subscribe` on a 2025 session (MCP 2025-11-25 Server/Resources §Subscriptions), or a
   * `subscriptions/listen` stream whose filter names `uri` (MCP 2026-07-28 Basic/Patterns
   * §Subscriptions). The updates reach `onNotification`; the subscription is made again when the
   * connection is opened anew.
   */
  async subscribeResource(upstream: McpUpstream, uri: string): Promise<void> {
    await this.use(upstream, async (client) => {
      const connection = this.#connections.get(upstream.name);
      if (client.getProtocolEra() === 'legacy' || !connection) {
        await client.subscribeResource({ uri }, { timeout: this.#options.connectTimeoutMs });
        return;
      }
      await this.#listenToResource(upstream, connection, client, uri);
    });
  }

  /** Ends what {@link subscribeResource} started for `uri` at `upstream`. */
  async unsubscribeResource(upstream: McpUpstream, uri: string): Promise<void> {
    await this.use(upstream, async (client) => {
      const stream = this.#connections.get(upstream.name)?.resourceStreams;
      if (client.getProtocolEra() === 'legacy' || !stream) {
        await client.unsubscribeResource({ uri }, { timeout: this.#options.connectTimeoutMs });
        return;
      }
      const subscription = stream.get(uri);
      stream.delete(uri);
      await (await subscription?.catch(() => undefined))?.close();
    });
  }

  async #listenToResource(upstream: McpUpstream, connection: Connection, client: Client, uri: string): Promise<void> {
    let opening = connection.resourceStreams.get(uri);
    if (!opening) {
      opening = client.listen({ resourceSubscriptions: [uri] }, { timeout: this.#options.connectTimeoutMs });
      connection.resourceStreams.set(uri, opening);
    }
    let subscription: McpSubscription;
    try {
      subscription = await opening;
    } catch (error) {
      if (connection.resourceStreams.get(uri) === opening) connection.resourceStreams.delete(uri);
      throw error;
    }
    if (!subscription.honoredFilter.resourceSubscriptions?.includes(uri)) {
      connection.resourceStreams.delete(uri);
      await subscription.close();
      throw new ProtocolError(ProtocolErrorCode.MethodNotFound, `${upstream.displayName} does not send updates of this resource.`);
    }
  }

  /** Closes the connections to upstreams not in `keep` (or whose URL changed). */
  async retain(keep: readonly McpUpstream[]): Promise<void> {
    const urls = new Map(keep.map((upstream) => [upstream.name, upstream.url]));
    await Promise.all(
      [...this.#connections].filter(([name, connection]) => urls.get(name) !== connection.url).map(([name, connection]) => this.#drop(name, connection)),
    );
  }

  /** Ends every upstream session and refuses new connections. */
  async closeAll(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#connections].map(([name, connection]) => this.#drop(name, connection)));
  }

  #open(upstream: McpUpstream): Connection {
    if (this.#closed) throw new Error('the owner of these upstream connections has ended');
    const { log, clientInfo, connectTimeoutMs, eras } = this.#options;
    const transport = new StreamableHTTPClientTransport(new URL(upstream.url), { fetch: (url, init) => this.#fetch(upstream, url, init) });
    const capabilities = this.#options.capabilities();
    const client = new Client(clientInfo, {
      capabilities,
      versionNegotiation: { mode: 'auto' },
      // The gateway hands input-required results to its own client instead of answering them itself.
      inputRequired: { autoFulfill: false },
    });
    client.onerror = (error) => log.debug('upstream connection error', { upstream: upstream.name, error: safeErrorText(error) });
    const { onNotification, onRequest } = this.#options;
    if (onNotification) {
      for (const method of RELAYED_NOTIFICATIONS) {
        client.setNotificationHandler(method, (notification) => onNotification(upstream, method, notification.params as Record<string, unknown> | undefined));
      }
    }
    if (onRequest) {
      const relay = (method: UpstreamRequest['method']) => (request: { params?: unknown }, ctx: ClientContext) =>
        onRequest(upstream, { method, params: request.params as Record<string, unknown> | undefined }, ctx.mcpReq.signal);
      if (capabilities.elicitation) client.setRequestHandler('elicitation/create', relay('elicitation/create') as never);
      if (capabilities.sampling) client.setRequestHandler('sampling/createMessage', relay('sampling/createMessage') as never);
      if (capabilities.roots) client.setRequestHandler('roots/list', relay('roots/list') as never);
    }
    const prior = eras.get(upstream.url);
    const connection: Connection = {
      url: upstream.url,
      resourceStreams: new Map(),
      ready: client.connect(transport, { timeout: connectTimeoutMs, ...(prior ? { prior } : {}) }).then(
        async () => {
          eras.learn(upstream.url, client, transport);
          carryCreatedTasks(transport);
          if (onNotification && client.getProtocolEra() === 'modern') await this.#listen(upstream, client);
          return { client, transport };
        },
        async (error: unknown) => {
          if (this.#connections.get(upstream.name) === connection) this.#connections.delete(upstream.name);
          eras.forget(upstream.url);
          await client.close().catch(() => undefined);
          throw error;
        },
      ),
    };
    // Callers that never await `ready` (close racing an open) must not cause an unhandled rejection.
    connection.ready.catch(() => undefined);
    this.#connections.set(upstream.name, connection);
    return connection;
  }

  /**
   * A 2026-07-28 upstream pushes list changes only on a `subscriptions/listen` stream; the owner
   * wants them, so one is opened for the life of the connection. Its notifications reach the
   * handlers set in {@link #open}.
   */
  async #listen(upstream: McpUpstream, client: Client): Promise<void> {
    const capabilities = client.getServerCapabilities();
    const filter = {
      ...(capabilities?.tools?.listChanged ? { toolsListChanged: true } : {}),
      ...(capabilities?.prompts?.listChanged ? { promptsListChanged: true } : {}),
      ...(capabilities?.resources?.listChanged ? { resourcesListChanged: true } : {}),
    };
    if (Object.keys(filter).length === 0) return;
    await client.listen(filter, { timeout: this.#options.connectTimeoutMs }).catch((error: unknown) => {
      this.#options.log.warn('could not listen to an upstream for list changes', { upstream: upstream.name, error: safeErrorText(error) });
    });
  }

  /** One HTTP request to `upstream` with this owner's credentials, sent once more after a 401 the owner could fix. */
  async #fetch(upstream: McpUpstream, url: string | URL, init: RequestInit | undefined): Promise<Response> {
    const send = async () => {
      let extra: Record<string, string>;
      const method = init?.method ?? 'GET';
      try {
        extra = await this.#options.headers(upstream, { method, url: String(url) });
      } catch (error) {
        throw new UpstreamCredentialsError(error);
      }
      const traceHeaders: Record<string, string> = {};
      const response = await traceUpstreamRequest(upstream, method, traceHeaders, async () => {
        const headers = new Headers(init?.headers);
        for (const [name, value] of Object.entries({ ...extra, ...traceHeaders })) headers.set(name, value);
        const started = performance.now();
        const answer = await fetch(url, { ...init, headers }).catch((error: unknown) => {
          recordUpstreamRequest(upstream.name, 'error', (performance.now() - started) / 1000);
          throw error;
        });
        recordUpstreamRequest(upstream.name, answer.status, (performance.now() - started) / 1000);
        return answer;
      }, (answer) => answer.status);
      return { response, sent: extra };
    };
    const unauthorized = async ({ response, sent }: { response: Response; sent: Record<string, string> }, retried: boolean) => {
      try {
        return (await this.#options.unauthorized?.(upstream, sent, retried, challengeOf(response.headers))) ?? false;
      } catch (error) {
        this.#options.log.warn('handling an upstream 401 failed', { upstream: upstream.name, error: safeErrorText(error) });
        return false;
      }
    };
    const first = await send();
    const stepUp = first.response.status === 403 ? insufficientScopeOf(first.response.headers.get('www-authenticate') ?? undefined) : undefined;
    if (stepUp && this.#options.insufficientScope) {
      let again: boolean;
      try {
        again = await this.#options.insufficientScope(upstream, first.sent, stepUp);
      } catch (error) {
        await first.response.body?.cancel().catch(() => undefined);
        throw new UpstreamCredentialsError(error);
      }
      if (!again) return first.response;
      await first.response.body?.cancel().catch(() => undefined);
      return (await send()).response;
    }
    // The SDK sends JSON bodies as strings, so the request can be sent again as it was.
    if (first.response.status !== 401 || !(await unauthorized(first, false))) return first.response;
    await first.response.body?.cancel().catch(() => undefined);
    const second = await send();
    if (second.response.status === 401) await unauthorized(second, true);
    return second.response;
  }

  async #drop(name: string, connection: Connection): Promise<void> {
    if (this.#connections.get(name) === connection) this.#connections.delete(name);
    const opened = await connection.ready.catch(() => undefined);
    if (!opened) return;
    const { client, transport } = opened;
    if (transport.sessionId !== undefined) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        transport.terminateSession().catch(() => undefined),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, TERMINATE_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
    }
    await client.close().catch(() => undefined);
  }
}

/**
 * Lets a `CreateTaskResult` (`resultType: "task"`, SEP-2663) through the SDK v2 client, which
 * only decodes `complete` and `input_required` results: such a result is handed to the client as
 * an empty complete result carrying the original under {@link CARRIED_TASK_META_KEY}.
 */
function carryCreatedTasks(transport: StreamableHTTPClientTransport): void {
  const deliver = transport.onmessage;
  if (!deliver) return;
  transport.onmessage = ((message: JSONRPCMessage, extra?: unknown) => {
    const result = (message as { result?: { resultType?: unknown } }).result;
    const carried =
      result?.resultType === 'task' ? { ...message, result: { resultType: 'complete', content: [], _meta: { [CARRIED_TASK_META_KEY]: result } } } : message;
    (deliver as (message: JSONRPCMessage, extra?: unknown) => void)(carried as JSONRPCMessage, extra);
  }) as typeof transport.onmessage;
}

/** The `CreateTaskResult` an upstream answered, when `result` is one carried by the gateway's client. */
export function createdTaskOf(result: Record<string, unknown>): Record<string, unknown> | undefined {
  const carried = (result['_meta'] as Record<string, unknown> | undefined)?.[CARRIED_TASK_META_KEY];
  return typeof carried === 'object' && carried !== null ? (carried as Record<string, unknown>) : undefined;
}

/** Whether `upstream` told the gateway, in its `server/discover` answer, that it offers MCP Tasks (SEP-2663). */
export function offersTasks(eras: UpstreamEras, upstream: McpUpstream): boolean {
  const known = eras.get(upstream.url);
  return known?.kind === 'modern' && (known.discover.capabilities as { extensions?: Record<string, unknown> } | undefined)?.extensions?.[TASKS_EXTENSION] !== undefined;
}

/** `upstreamHeaders` threw; the cause is kept for the caller to decide what the user sees. */
export class UpstreamCredentialsError extends Error {
  override name = 'UpstreamCredentialsError';

  constructor(override readonly cause: unknown) {
    super('the headers for the upstream could not be produced', { cause });
  }
}

/** The credentials failure inside `error`, however deep the SDK wrapped it. */
export function credentialsFailureOf(error: unknown): UpstreamCredentialsError | undefined {
  for (let current: unknown = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth += 1) {
    if (current instanceof UpstreamCredentialsError) return current;
  }
  return undefined;
}

/** Whether `error` is a JSON-RPC error response the upstream sent, as opposed to a local failure. */
export function isJsonRpcErrorFromUpstream(error: unknown): error is ProtocolError {
  return error instanceof ProtocolError;
}

function isAbort(error: unknown): boolean {
  return error instanceof Error && error.name === 'AbortError';
}

/** The upstream's own JSON-RPC error, re-sent to the MCP client with the same code, message and data. */
export function relayJsonRpcError(error: ProtocolError): JsonRpcError {
  return new JsonRpcError(error.code, error.message, error.data);
}

/**
 * A short reason for a failed upstream request, safe to show to the user: it names the kind of
 * failure only, never response bodies, URLs or header values.
 */
export function describeUpstreamFailure(error: unknown): string {
  if (credentialsFailureOf(error)) return 'no credentials are available for it';
  if (error instanceof UnauthorizedError) return 'it refused the credentials';
  if (error instanceof SdkHttpError) {
    const { status } = error;
    if (status === 401 || status === 403) return `it refused the credentials (HTTP ${status})`;
    if (status === 404) return 'it does not know the session or endpoint (HTTP 404)';
    if (status >= 400) return `it answered HTTP ${status}`;
    return 'it sent a response that is not MCP';
  }
  if (error instanceof SdkError) {
    if (error.code === SdkErrorCode.RequestTimeout) return 'it did not answer in time';
    if (error.code === SdkErrorCode.ConnectionClosed) return 'the connection to it closed';
    if (error.code === SdkErrorCode.InvalidResult) return 'it sent an invalid response';
  }
  if (isFetchFailure(error)) return 'it could not be reached';
  if (error instanceof Error && error.name === 'ZodError') return 'it sent an invalid response';
  return 'the request to it failed';
}

function isFetchFailure(error: unknown): boolean {
  for (let current: unknown = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth += 1) {
    if (current instanceof TypeError && current.message === 'fetch failed') return true;
    if ((current as { code?: unknown }).code === 'ECONNREFUSED') return true;
  }
  return false;
}

/** An error's class and code for operators' logs, with its message cut short. */
export function safeErrorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error).slice(0, 200);
  const cause = error.cause as { code?: unknown } | undefined;
  const code = (error as { code?: unknown }).code ?? cause?.code;
  return `${error.name}${code !== undefined ? `(${String(code)})` : ''}: ${error.message.slice(0, 200)}`;
}

import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

import type { Logger } from '../log.js';
import { JsonRpcError } from './json-rpc.js';
import type { McpUpstream } from './types.js';

/** What {@link UpstreamConnections} needs from the session that owns it. */
export interface UpstreamConnectionsOptions {
  /** How the gateway introduces itself in `initialize` to upstreams. */
  clientInfo: { name: string; version: string };
  log: Logger;
  /** Extra headers for one HTTP request to `upstream`; called for every request. */
  headers(upstream: McpUpstream): Promise<Record<string, string>>;
  /**
   * The upstream answered HTTP 401 to a request sent with `sent` headers; `retried` tells whether
   * it was already the retry. Resolving true sends the request once more with fresh headers.
   */
  unauthorized?(upstream: McpUpstream, sent: Record<string, string>, retried: boolean): Promise<boolean>;
  /** An upstream announced that its tool list changed. */
  onToolListChanged(upstream: McpUpstream): void;
  /** Bound on the `initialize` round trip. */
  connectTimeoutMs: number;
}

interface Connection {
  url: string;
  ready: Promise<{ client: Client; transport: StreamableHTTPClientTransport }>;
}

/** How long an upstream gets to acknowledge the end of its session before the connection is dropped anyway. */
const TERMINATE_TIMEOUT_MS = 2_000;

/**
 * The upstream MCP connections of one gateway session: at most one SDK `Client` per upstream,
 * opened on first use and closed (with an HTTP DELETE ending the upstream session, MCP spec
 * 2025-06-18 Basic/Transports §Session Management) when the gateway session ends.
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
        if (isJsonRpcErrorFromUpstream(error)) throw error;
        await this.#drop(upstream.name, connection);
        const sessionLost = error instanceof StreamableHTTPError && error.code === 404;
        if (!sessionLost || !reused || attempt > 0) throw error;
        this.#options.log.info('upstream session expired; reconnecting', { upstream: upstream.name });
      }
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
    if (this.#closed) throw new Error('the session has ended');
    const { log, clientInfo, connectTimeoutMs } = this.#options;
    const transport = new StreamableHTTPClientTransport(new URL(upstream.url), {
      fetch: async (url, init) => {
        const send = async () => {
          let extra: Record<string, string>;
          try {
            extra = await this.#options.headers(upstream);
          } catch (error) {
            throw new UpstreamCredentialsError(error);
          }
          const headers = new Headers(init?.headers);
          for (const [name, value] of Object.entries(extra)) headers.set(name, value);
          return { response: await fetch(url, { ...init, headers }), sent: extra };
        };
        const unauthorized = async (sent: Record<string, string>, retried: boolean) => {
          try {
            return (await this.#options.unauthorized?.(upstream, sent, retried)) ?? false;
          } catch (error) {
            log.warn('handling an upstream 401 failed', { upstream: upstream.name, error: safeErrorText(error) });
            return false;
          }
        };
        const first = await send();
        // The SDK sends JSON bodies as strings, so the request can be sent again as it was.
        if (first.response.status !== 401 || !(await unauthorized(first.sent, false))) return first.response;
        await first.response.body?.cancel().catch(() => undefined);
        const second = await send();
        if (second.response.status === 401) await unauthorized(second.sent, true);
        return second.response;
      },
    });
    const client = new Client(clientInfo, { capabilities: {} });
    client.onerror = (error) => log.debug('upstream connection error', { upstream: upstream.name, error: safeErrorText(error) });
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => this.#options.onToolListChanged(upstream));
    const connection: Connection = {
      url: upstream.url,
      ready: client.connect(transport, { timeout: connectTimeoutMs }).then(
        () => ({ client, transport }),
        async (error: unknown) => {
          if (this.#connections.get(upstream.name) === connection) this.#connections.delete(upstream.name);
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

  async #drop(name: string, connection: Connection): Promise<void> {
    if (this.#connections.get(name) === connection) this.#connections.delete(name);
    const opened = await connection.ready.catch(() => undefined);
    if (!opened) return;
    const { client, transport } = opened;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      transport.terminateSession().catch(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, TERMINATE_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    await client.close().catch(() => undefined);
  }
}

/** `upstreamHeaders` threw; the cause is kept for the caller to decide what the user sees. */
export class UpstreamCredentialsError extends Error {
  override name = 'UpstreamCredentialsError';

  constructor(override readonly cause: unknown) {
    super('the headers for the upstream could not be produced', { cause });
  }
}

/**
 * Whether `error` is a JSON-RPC error response the upstream sent, as opposed to one the SDK made
 * up locally for a timeout or a closed connection (which reuse the same class and codes).
 */
export function isJsonRpcErrorFromUpstream(error: unknown): error is McpError {
  if (!(error instanceof McpError)) return false;
  const data = error.data as { timeout?: unknown; maxTotalTimeout?: unknown } | undefined;
  if (error.code === ErrorCode.RequestTimeout && (data?.timeout !== undefined || data?.maxTotalTimeout !== undefined)) return false;
  if (error.code === ErrorCode.ConnectionClosed && error.message === `MCP error ${ErrorCode.ConnectionClosed}: Connection closed`) return false;
  return true;
}

/** The upstream's own JSON-RPC error, re-sent to the MCP client with the same code, message and data. */
export function relayJsonRpcError(error: McpError): JsonRpcError {
  const prefix = `MCP error ${error.code}: `;
  return new JsonRpcError(error.code, error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message, error.data);
}

/**
 * A short reason for a failed upstream request, safe to show to the user: it names the kind of
 * failure only, never response bodies, URLs or header values.
 */
export function describeUpstreamFailure(error: unknown): string {
  if (error instanceof UpstreamCredentialsError) return 'no credentials are available for it';
  if (error instanceof UnauthorizedError) return 'it refused the credentials';
  if (error instanceof StreamableHTTPError) {
    if (error.code === 401 || error.code === 403) return `it refused the credentials (HTTP ${error.code})`;
    if (error.code === 404) return 'it does not know the session or endpoint (HTTP 404)';
    if (error.code !== undefined && error.code >= 400) return `it answered HTTP ${error.code}`;
    return 'it sent a response that is not MCP';
  }
  if (error instanceof McpError) {
    if (error.code === ErrorCode.RequestTimeout) return 'it did not answer in time';
    if (error.code === ErrorCode.ConnectionClosed) return 'the connection to it closed';
  }
  if (error instanceof TypeError && error.message === 'fetch failed') return 'it could not be reached';
  if (error instanceof Error && error.name === 'ZodError') return 'it sent an invalid response';
  return 'the request to it failed';
}

/** An error's class and code for operators' logs, with its message cut short. */
export function safeErrorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error).slice(0, 200);
  const cause = error.cause as { code?: unknown } | undefined;
  const code = (error as { code?: unknown }).code ?? cause?.code;
  return `${error.name}${code !== undefined ? `(${String(code)})` : ''}: ${error.message.slice(0, 200)}`;
}

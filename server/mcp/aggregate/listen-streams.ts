import { createMcpHandler, InMemoryServerEventBus, Server, type McpHttpHandler, type ServerCapabilities, type ServerEvent } from '@modelcontextprotocol/server';

import type { Logger } from '../../log.js';
import type { McpCaller, McpUpstream } from '../types.js';
import { describeUpstreamFailure, safeErrorText, UpstreamConnections } from '../upstream-connections.js';
import { forCaller, type CallerUpstreamOptions } from './caller-upstreams.js';
import type { UpstreamNaming } from './naming.js';

/** What {@link ListenStreams} needs. */
export interface ListenStreamsOptions {
  serverInfo: { name: string; version: string };
  log: Logger;
  naming: UpstreamNaming;
  /** The capabilities the listen filter is narrowed against (MCP 2026-07-28 Basic/Patterns §Acknowledgment). */
  capabilities: ServerCapabilities;
  maxBodyBytes: number;
  /** Options for each user's upstream connections, apart from what the listeners decide. */
  upstreams: CallerUpstreamOptions;
}

/** One open `subscriptions/listen` stream of the aggregate endpoint; see {@link ListenStreams.open}. */
export interface ListenStream {
  /** Answers the listen request: the acknowledgment, then the notifications, until the client goes away. */
  serve(request: Request): Promise<Response>;
  /** Ends this stream's share of the user's upstream listeners; the last stream of a user closes them. */
  close(): Promise<void>;
}

/** One user's upstream connections, opened with that user's credentials and shared by the user's streams. */
interface UserListeners {
  caller: McpCaller;
  connections: UpstreamConnections;
  streams: Set<StreamState>;
  /** How many streams want updates of each upstream resource (`<upstream>\n<uri>`). */
  resources: Map<string, { upstream: McpUpstream; uri: string; streams: number }>;
}

interface StreamState {
  caller: McpCaller;
  bus: InMemoryServerEventBus;
  /** Serves this stream alone: its listen router hears only this stream's bus. */
  handler?: McpHttpHandler;
  /** Keys into `UserListeners.resources` this stream holds. */
  resources: string[];
}

type Item = Record<string, unknown>;

/**
 * The `subscriptions/listen` streams (MCP 2026-07-28 Basic/Patterns §Subscriptions) of the
 * aggregate endpoint. Every other 2026-07-28 request is answered without state in the gateway;
 * a listen stream is by nature one long-lived HTTP response, so it and the upstream listeners
 * feeding it live in the process that holds it, and end with it. A user's streams share one
 * upstream connection per upstream, opened with that user's credentials: each stream gets the
 * change notifications of exactly the upstreams its caller's grant covers, and
 * `notifications/resources/updated` under the URIs the gateway shows. Each stream has an SDK
 * listen router of its own, so no event published for one user can reach another's stream.
 */
export class ListenStreams {
  readonly #options: ListenStreamsOptions;
  readonly #users = new Map<string, UserListeners>();

  constructor(options: ListenStreamsOptions) {
    this.#options = options;
  }

  /** Streams open in this process. */
  get streamCount(): number {
    let count = 0;
    for (const user of this.#users.values()) count += user.streams.size;
    return count;
  }

  /**
   * Opens the upstream listeners a listen request from `caller` needs (`body` is the parsed
   * request) before it is acknowledged, so a change the client causes after the acknowledgment
   * is heard: every upstream of the grant for list changes, and, for each `resourceSubscriptions`
   * URI that leads to an upstream, a subscription there. URIs that lead nowhere, or whose
   * upstream refused, are left out of the filter, so the acknowledgment names only what arrives.
   */
  async open(caller: McpCaller, body: Item): Promise<ListenStream> {
    const { log, naming } = this.#options;
    const user = this.#userListeners(caller);
    const stream: StreamState = { caller, bus: new InMemoryServerEventBus((error) => log.debug('listen stream delivery failed', { error: safeErrorText(error) })), resources: [] };
    user.streams.add(stream);

    const params = (body['params'] ?? {}) as Item;
    const filter = params['notifications'];
    let forwarded = body;
    if (typeof filter === 'object' && filter !== null && Array.isArray((filter as Item)['resourceSubscriptions'])) {
      const requested = ((filter as Item)['resourceSubscriptions'] as unknown[]).filter((uri): uri is string => typeof uri === 'string');
      const honored: string[] = [];
      await Promise.all(
        requested.map(async (uri) => {
          const target = naming.resolveUri(uri, caller.upstreams);
          if (target && (await this.#retainResource(user, stream, target.upstream, target.uri))) honored.push(uri);
        }),
      );
      forwarded = { ...body, params: { ...params, notifications: { ...(filter as Item), resourceSubscriptions: requested.filter((uri) => honored.includes(uri)) } } };
    }
    await Promise.all(
      caller.upstreams.map((upstream) =>
        user.connections
          .use(upstream, async () => undefined)
          .catch((error: unknown) =>
            log.info('upstream left out of a listen stream', { upstream: upstream.name, userId: caller.userId, reason: describeUpstreamFailure(error), error: safeErrorText(error) }),
          ),
      ),
    );

    const { serverInfo, capabilities, maxBodyBytes } = this.#options;
    const handler = (stream.handler = createMcpHandler(() => new Server(serverInfo, { capabilities }), {
      legacy: 'reject',
      bus: stream.bus,
      maxRequestBodySize: maxBodyBytes,
      onerror: (error) => log.debug('listen request refused', { error: safeErrorText(error) }),
    }));
    let closed = false;
    return {
      serve: (request) => handler.fetch(request, { parsedBody: forwarded }),
      close: async () => {
        if (closed) return;
        closed = true;
        await handler.close();
        await this.#release(user, stream);
      },
    };
  }

  /**
   * Ends every stream, each with the empty `subscriptions/listen` result that tells its client the
   * end is deliberate (MCP 2026-07-28 Basic/Patterns §Graceful Closure), and every upstream listener.
   */
  async closeAll(): Promise<void> {
    const users = [...this.#users.values()];
    this.#users.clear();
    await Promise.all(
      users.map(async (user) => {
        await Promise.all([...user.streams].map((stream) => stream.handler?.close()));
        await user.connections.closeAll();
      }),
    );
  }

  #userListeners(caller: McpCaller): UserListeners {
    const existing = this.#users.get(caller.userId);
    if (existing) {
      existing.caller = caller;
      return existing;
    }
    const user: UserListeners = {
      caller,
      streams: new Set(),
      resources: new Map(),
      connections: new UpstreamConnections({
        ...forCaller(this.#options.upstreams, () => user.caller),
        // Listeners answer no server→client requests: they carry notifications only.
        capabilities: () => ({}),
        onNotification: (upstream, method, params) => this.#deliver(user, upstream, method, params),
      }),
    };
    this.#users.set(caller.userId, user);
    return user;
  }

  /** Hands an upstream's change notification to the streams of `user` whose grant covers that upstream. */
  #deliver(user: UserListeners, upstream: McpUpstream, method: string, params: Item | undefined): void {
    const event = changeEvent(method, params, (uri) => this.#options.naming.uri(upstream, uri));
    if (!event) return;
    for (const stream of user.streams) {
      if (stream.caller.upstreams.some((granted) => granted.name === upstream.name && granted.url === upstream.url)) stream.bus.publish(event);
    }
  }

  async #retainResource(user: UserListeners, stream: StreamState, upstream: McpUpstream, uri: string): Promise<boolean> {
    const key = `${upstream.name}\n${uri}`;
    const held = user.resources.get(key);
    if (held) {
      held.streams += 1;
      stream.resources.push(key);
      return true;
    }
    const entry = { upstream, uri, streams: 1 };
    user.resources.set(key, entry);
    stream.resources.push(key);
    try {
      await user.connections.subscribeResource(upstream, uri);
      return true;
    } catch (error) {
      this.#options.log.info('upstream refused a resource subscription', { upstream: upstream.name, userId: user.caller.userId, reason: describeUpstreamFailure(error) });
      stream.resources.splice(stream.resources.indexOf(key), 1);
      entry.streams -= 1;
      if (entry.streams === 0 && user.resources.get(key) === entry) user.resources.delete(key);
      return false;
    }
  }

  async #release(user: UserListeners, stream: StreamState): Promise<void> {
    user.streams.delete(stream);
    if (user.streams.size === 0) {
      if (this.#users.get(user.caller.userId) === user) this.#users.delete(user.caller.userId);
      await user.connections.closeAll();
      return;
    }
    await Promise.all(
      stream.resources.map(async (key) => {
        const entry = user.resources.get(key);
        if (!entry || --entry.streams > 0) return;
        user.resources.delete(key);
        await user.connections.unsubscribeResource(entry.upstream, entry.uri).catch(() => undefined);
      }),
    );
  }
}

/** The listen event for an upstream notification, with resource URIs as the gateway shows them; `undefined` for any other notification. */
function changeEvent(method: string, params: Item | undefined, gatewayUri: (uri: string) => string): ServerEvent | undefined {
  switch (method) {
    case 'notifications/tools/list_changed':
      return { kind: 'tools_list_changed' };
    case 'notifications/prompts/list_changed':
      return { kind: 'prompts_list_changed' };
    case 'notifications/resources/list_changed':
      return { kind: 'resources_list_changed' };
    case 'notifications/resources/updated':
      return typeof params?.['uri'] === 'string' ? { kind: 'resource_updated', uri: gatewayUri(params['uri']) } : undefined;
    default:
      return undefined;
  }
}

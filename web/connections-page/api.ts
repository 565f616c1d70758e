/**
 * "My connections" JSON API: the `ConnectionsView` the server answers with, and a small client for
 * `{apiBase}`, `{apiBase}/clients/:clientId/revoke` and `{apiBase}/upstreams/:name/connect|disconnect|reconnect`.
 *
 * The view types are the server's (`server/views/connections.ts`); nothing here runs outside a browser.
 */
import type { ConnectionClientView, ConnectionsView, ConnectionUpstreamView } from '../../server/views/connections.js';
import { upstreamStatuses } from '../../server/views/consent.js';
import { ApiError, NETWORK_ERROR, requestJson } from '../consent-app/api.js';

export { ApiError, NETWORK_ERROR };

export type { ConnectionClientView, ConnectionsView, ConnectionUpstreamView };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

function isNullableString(value: unknown): value is string | null {
  return value === null || typeof value === 'string';
}

function isUpstream(value: unknown): value is ConnectionUpstreamView {
  return (
    isObject(value) &&
    typeof value['name'] === 'string' &&
    typeof value['displayName'] === 'string' &&
    (upstreamStatuses as readonly unknown[]).includes(value['status']) &&
    isStringArray(value['scopes']) &&
    isNullableString(value['connectedAt']) &&
    isNullableString(value['lastUsedAt']) &&
    typeof value['authRequired'] === 'boolean'
  );
}

function isClient(value: unknown): value is ConnectionClientView {
  return (
    isObject(value) &&
    typeof value['clientId'] === 'string' &&
    isNullableString(value['clientName']) &&
    isStringArray(value['upstreams']) &&
    isStringArray(value['scopes']) &&
    typeof value['grantedAt'] === 'string'
  );
}

/** Whether `value` has the shape of a {@link ConnectionsView}. */
export function isConnectionsView(value: unknown): value is ConnectionsView {
  if (!isObject(value)) return false;
  const { user, upstreams, clients } = value;
  return (
    isObject(user) &&
    typeof user['id'] === 'string' &&
    Array.isArray(upstreams) &&
    upstreams.every(isUpstream) &&
    Array.isArray(clients) &&
    clients.every(isClient) &&
    isNullableString(value['notice']) &&
    (value['redirectTo'] === undefined || isNullableString(value['redirectTo']))
  );
}

/** The page's JSON API, same origin only. Every method resolves with a view or rejects with an {@link ApiError}. */
export class ConnectionsApi {
  readonly apiBase: string;
  readonly #csrfToken: string;
  readonly #fetch: typeof fetch;

  constructor(options: { apiBase: string; csrfToken: string; fetch?: typeof fetch }) {
    this.apiBase = options.apiBase.replace(/\/+$/, '');
    this.#csrfToken = options.csrfToken;
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  /** `GET {apiBase}`. */
  load(): Promise<ConnectionsView> {
    return this.#request('GET', '');
  }

  /** `POST {apiBase}/clients/:clientId/revoke`: the client's gateway tokens stop working. */
  revokeClient(clientId: string): Promise<ConnectionsView> {
    return this.#request('POST', `/clients/${encodeURIComponent(clientId)}/revoke`);
  }

  /** `POST {apiBase}/upstreams/:name/connect`: answers with the link that starts the authorization at the upstream. */
  connect(upstream: string): Promise<ConnectionsView> {
    return this.#request('POST', `/upstreams/${encodeURIComponent(upstream)}/connect`);
  }

  /** `POST {apiBase}/upstreams/:name/disconnect`: the gateway forgets the user's tokens there. */
  disconnect(upstream: string): Promise<ConnectionsView> {
    return this.#request('POST', `/upstreams/${encodeURIComponent(upstream)}/disconnect`);
  }

  /** `POST {apiBase}/upstreams/:name/reconnect`. */
  reconnect(upstream: string): Promise<ConnectionsView> {
    return this.#request('POST', `/upstreams/${encodeURIComponent(upstream)}/reconnect`);
  }

  #request(method: 'GET' | 'POST', path: string): Promise<ConnectionsView> {
    return requestJson(this.#fetch, { method, url: `${this.apiBase}${path}`, csrfToken: this.#csrfToken, body: method === 'POST' ? {} : undefined, accept: isConnectionsView });
  }
}

/**
 * "My connections" JSON API: the `ConnectionsView` the server answers with, and a small client for
 * `{apiBase}`, `{apiBase}/clients/:clientId/revoke` and `{apiBase}/upstreams/:name/connect|disconnect|reconnect`.
 *
 * The view types are the server's (`server/views/connections.ts`); nothing here runs outside a browser.
 */
import type { ConnectionClientView, ConnectionsView, ConnectionUpstreamView } from '../../server/views/connections.js';
import { upstreamStatuses } from '../../server/views/consent.js';
import { isNullableString, isObject, isStringArray, JsonApiClient, oneOf } from '../shared/json-api.js';

export type { ConnectionClientView, ConnectionsView, ConnectionUpstreamView };

function isUpstream(value: unknown): value is ConnectionUpstreamView {
  return (
    isObject(value) &&
    typeof value['name'] === 'string' &&
    typeof value['displayName'] === 'string' &&
    oneOf(upstreamStatuses, value['status']) &&
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

/** The page's JSON API, same origin only. Every method resolves with a view or rejects with an `ApiError` (`web/shared/json-api.ts`). */
export class ConnectionsApi extends JsonApiClient {
  /** `GET {apiBase}`. */
  load(): Promise<ConnectionsView> {
    return this.#send('GET', '');
  }

  /** `POST {apiBase}/clients/:clientId/revoke`: the client's gateway tokens stop working. */
  revokeClient(clientId: string): Promise<ConnectionsView> {
    return this.#send('POST', `/clients/${encodeURIComponent(clientId)}/revoke`);
  }

  /** `POST {apiBase}/upstreams/:name/connect`: answers with the link that starts the authorization at the upstream. */
  connect(upstream: string): Promise<ConnectionsView> {
    return this.#send('POST', `/upstreams/${encodeURIComponent(upstream)}/connect`);
  }

  /** `POST {apiBase}/upstreams/:name/disconnect`: the gateway forgets the user's tokens there. */
  disconnect(upstream: string): Promise<ConnectionsView> {
    return this.#send('POST', `/upstreams/${encodeURIComponent(upstream)}/disconnect`);
  }

  /** `POST {apiBase}/upstreams/:name/reconnect`. */
  reconnect(upstream: string): Promise<ConnectionsView> {
    return this.#send('POST', `/upstreams/${encodeURIComponent(upstream)}/reconnect`);
  }

  #send(method: 'GET' | 'POST', path: string): Promise<ConnectionsView> {
    return this.request(method, path, method === 'POST' ? {} : undefined, isConnectionsView);
  }
}

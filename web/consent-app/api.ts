/**
 * The consent screens' JSON API: the `FlowView` the server renders a flow as, and a small client
 * for `{apiBase}/state`, `/identity`, `/services`, `/decision` and `/connect`.
 *
 * The view types are the server's (`server/views/consent.ts`); nothing here runs outside a browser.
 */

import type {
  ApiErrorBody,
  ClientRegistration,
  ClientView,
  Decision,
  FlowStatus,
  FlowStep,
  FlowView,
  IdentityMode,
  RedirectResult,
  UpstreamStatus,
  UpstreamView,
} from '../../server/views/consent.js';
// The browser checks answers against the server's own lists at run time.
import { upstreamStatuses } from '../../server/views/consent.js';
import { clientRegistrations, consentStatuses, consentSteps, identitySources } from '../../workflows/consent-flow/steps.js';

export type { ApiErrorBody, ClientRegistration, ClientView, Decision, FlowStatus, FlowStep, FlowView, IdentityMode, RedirectResult, UpstreamStatus, UpstreamView };

/** `error` of a request that never got an HTTP answer; `status` is 0. */
export const NETWORK_ERROR = 'network_error';
/** `error` of a 2xx answer that is not the JSON the client expects. */
export const INVALID_RESPONSE = 'invalid_response';

/** A failed API call: the server's `{error, error_description}` and status, or {@link NETWORK_ERROR} with status 0. */
export class ApiError extends Error {
  readonly status: number;
  readonly error: string;
  readonly description: string;

  constructor(status: number, error: string, description: string, options?: { cause?: unknown }) {
    super(description || error, options);
    this.name = 'ApiError';
    this.status = status;
    this.error = error;
    this.description = description;
  }
}

/** Whether a step's answer sends the browser elsewhere rather than describing the flow. */
export function isRedirect(result: FlowView | RedirectResult): result is RedirectResult {
  return !('step' in result) && typeof result.redirectTo === 'string';
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

function oneOf<T extends string>(values: readonly T[], value: unknown): value is T {
  return typeof value === 'string' && (values as readonly string[]).includes(value);
}

function isUpstreamView(value: unknown): value is UpstreamView {
  return (
    isObject(value) &&
    typeof value['name'] === 'string' &&
    typeof value['displayName'] === 'string' &&
    oneOf(upstreamStatuses, value['status']) &&
    typeof value['authRequired'] === 'boolean' &&
    isStringArray(value['scopes'])
  );
}

/** Whether `value` has the shape of a {@link FlowView}, so screens never render half an object. */
export function isFlowView(value: unknown): value is FlowView {
  if (!isObject(value)) return false;
  const { client, user, upstreams } = value;
  return (
    typeof value['flowId'] === 'string' &&
    oneOf(consentSteps, value['step']) &&
    oneOf(consentStatuses, value['status']) &&
    oneOf(identitySources, value['identityMode']) &&
    (user === null || (isObject(user) && typeof user['id'] === 'string')) &&
    isObject(client) &&
    typeof client['clientId'] === 'string' &&
    (client['clientName'] === null || typeof client['clientName'] === 'string') &&
    (client['redirectHost'] === null || typeof client['redirectHost'] === 'string') &&
    oneOf(clientRegistrations, client['registration']) &&
    Array.isArray(upstreams) &&
    upstreams.every(isUpstreamView) &&
    isStringArray(value['chosenUpstreams']) &&
    isStringArray(value['scopes']) &&
    typeof value['expiresAt'] === 'string' &&
    (value['redirectTo'] === null || typeof value['redirectTo'] === 'string')
  );
}

function isRedirectResult(value: unknown): value is RedirectResult {
  return isObject(value) && !('step' in value) && typeof value['redirectTo'] === 'string';
}

function isIdentityResult(value: unknown): value is FlowView | RedirectResult {
  return isFlowView(value) || isRedirectResult(value);
}

/** Where the client sends requests and the CSRF token it proves the page with. */
export interface ConsentApiOptions {
  /** e.g. `/interaction/<flowId>`; no trailing slash needed. */
  apiBase: string;
  /** Sent as `X-CSRF-Token` on every POST. */
  csrfToken: string;
  /** Defaults to the global `fetch`; tests pass their own. */
  fetch?: typeof fetch;
}

/**
 * The consent flow's JSON API, same origin only (`credentials: 'same-origin'`). Every method
 * resolves with the parsed answer or rejects with an {@link ApiError}.
 */
export class ConsentApi {
  readonly apiBase: string;
  readonly #csrfToken: string;
  readonly #fetch: typeof fetch;

  constructor(options: ConsentApiOptions) {
    this.apiBase = options.apiBase.replace(/\/+$/, '');
    this.#csrfToken = options.csrfToken;
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  /** `GET {apiBase}/state`. */
  getState(): Promise<FlowView> {
    return this.#request('GET', '/state', undefined, isFlowView);
  }

  /** `POST {apiBase}/identity` with `{userId}` (dev mode) or `{}` (oidc: answers with the IdP's URL). */
  chooseIdentity(userId?: string): Promise<FlowView | RedirectResult> {
    const body = userId === undefined ? {} : { userId };
    return this.#request('POST', '/identity', body, isIdentityResult);
  }

  /** `POST {apiBase}/services` with `{upstreams}`. */
  chooseServices(upstreams: readonly string[]): Promise<FlowView> {
    return this.#request('POST', '/services', { upstreams: [...upstreams] }, isFlowView);
  }

  /** `POST {apiBase}/decision` with `{decision}`. */
  decide(decision: Decision): Promise<FlowView> {
    return this.#request('POST', '/decision', { decision }, isFlowView);
  }

  /** `POST {apiBase}/connect` with `{upstream}`: answers with the upstream's authorization URL. */
  connect(upstream: string): Promise<RedirectResult> {
    return this.#request('POST', '/connect', { upstream }, isRedirectResult);
  }

  #request<T>(method: 'GET' | 'POST', path: string, body: object | undefined, accept: (value: unknown) => value is T): Promise<T> {
    return requestJson(this.#fetch, { method, url: `${this.apiBase}${path}`, csrfToken: this.#csrfToken, body, accept });
  }
}

/**
 * One same-origin JSON call of the gateway's page APIs: CSRF header on POSTs, `{error,
 * error_description}` bodies become {@link ApiError}s, and the answer must pass `accept`.
 */
export async function requestJson<T>(
  fetchFn: typeof fetch,
  request: { method: 'GET' | 'POST'; url: string; csrfToken: string; body: object | undefined; accept: (value: unknown) => value is T },
): Promise<T> {
  const { method, body, accept } = request;
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (method === 'POST') {
    headers['Content-Type'] = 'application/json';
    headers['X-CSRF-Token'] = request.csrfToken;
  }
  let response: Response;
  try {
    response = await fetchFn(request.url, {
      method,
      headers,
      credentials: 'same-origin',
      cache: 'no-store',
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch (cause) {
    throw new ApiError(0, NETWORK_ERROR, 'The gateway could not be reached.', { cause });
  }
  let payload: unknown;
  try {
    payload = await response.json();
  } catch (cause) {
    payload = undefined;
    if (response.ok) throw new ApiError(response.status, INVALID_RESPONSE, 'The gateway sent an unreadable answer.', { cause });
  }
  if (!response.ok) {
    const error = isObject(payload) && typeof payload['error'] === 'string' ? payload['error'] : 'server_error';
    const description = isObject(payload) && typeof payload['error_description'] === 'string' ? payload['error_description'] : '';
    throw new ApiError(response.status, error, description);
  }
  if (!accept(payload)) throw new ApiError(response.status, INVALID_RESPONSE, 'The gateway sent an unexpected answer.');
  return payload;
}

/**
 * What both pages' JSON APIs share: {@link JsonApiClient} (same-origin calls, the CSRF header on
 * POSTs, answers checked before use), {@link ApiError}, and the guards that check an answer's shape.
 * Nothing here runs outside a browser.
 */

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

/** Whether `value` is a plain JSON object. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Whether `value` is a list of strings. */
export function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

/** Whether `value` is a string or null. */
export function isNullableString(value: unknown): value is string | null {
  return value === null || typeof value === 'string';
}

/** Whether `value` is one of a closed list's members. */
export function oneOf<T extends string>(values: readonly T[], value: unknown): value is T {
  return typeof value === 'string' && (values as readonly string[]).includes(value);
}

/** Where a page's client sends requests and the CSRF token it proves the page with. */
export interface JsonApiOptions {
  /** e.g. `/interaction/<flowId>`; no trailing slash needed. */
  apiBase: string;
  /** Sent as `X-CSRF-Token` on every POST. */
  csrfToken: string;
  /** Defaults to the global `fetch`; tests pass their own. */
  fetch?: typeof fetch;
}

/**
 * A page's JSON API, same origin only (`credentials: 'same-origin'`): each call resolves with an
 * answer that passed its check, or rejects with an {@link ApiError}.
 */
export class JsonApiClient {
  readonly apiBase: string;
  readonly #csrfToken: string;
  readonly #fetch: typeof fetch;

  constructor(options: JsonApiOptions) {
    this.apiBase = options.apiBase.replace(/\/+$/, '');
    this.#csrfToken = options.csrfToken;
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  /** `method {apiBase}{path}`: the CSRF header on POSTs, `{error, error_description}` bodies become {@link ApiError}s, the answer must pass `accept`. */
  protected async request<T>(method: 'GET' | 'POST', path: string, body: object | undefined, accept: (value: unknown) => value is T): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (method === 'POST') {
      headers['Content-Type'] = 'application/json';
      headers['X-CSRF-Token'] = this.#csrfToken;
    }
    let response: Response;
    try {
      response = await this.#fetch(`${this.apiBase}${path}`, {
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
}

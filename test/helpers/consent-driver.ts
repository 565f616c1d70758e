import { createHash, randomBytes } from 'node:crypto';
import type { FlowView } from '../../server/views/consent.js';

/** A response as the driver saw it: nothing followed, body read as text. */
export interface HttpResult {
  status: number;
  headers: Headers;
  /** The `Location` header resolved against the request URL, when there is one. */
  location: URL | null;
  body: string;
}

/** A JSON API answer: the status and the parsed body (`{error, error_description}` when it failed). */
export interface ApiResult<T> {
  status: number;
  headers: Headers;
  body: T;
}

/** The `{error, error_description}` body of a failed request (RFC 6749 §5.2). */
export interface ErrorBody {
  error: string;
  error_description?: string;
}

/** A PKCE pair (RFC 7636 §4.1–4.2), S256. */
export interface Pkce {
  verifier: string;
  challenge: string;
}

/** A fresh S256 PKCE pair. */
export function createPkce(): Pkce {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

/**
 * Parameters of an authorization request (RFC 6749 §4.1.1, RFC 7636, RFC 8707). `null` leaves a
 * parameter out; `undefined` takes the default (S256 challenge, `mcp:tools`, `<gateway>/mcp`).
 */
export interface AuthorizationParams {
  clientId: string;
  redirectUri: string;
  state?: string;
  pkce?: Pkce;
  codeChallenge?: string | null;
  codeChallengeMethod?: string | null;
  scope?: string | null;
  resource?: string | null;
}

/** Builds `<gateway>/auth?...` as an MCP client would. */
export function authorizationUrl(gatewayUrl: string, params: AuthorizationParams): URL {
  const url = new URL('/auth', gatewayUrl);
  const query: Record<string, string | null> = {
    response_type: 'code',
    client_id: params.clientId,
    redirect_uri: params.redirectUri,
    state: params.state ?? randomBytes(12).toString('base64url'),
    scope: params.scope === undefined ? 'mcp:tools' : params.scope,
    resource: params.resource === undefined ? `${gatewayUrl}/mcp` : params.resource,
    code_challenge: params.codeChallenge === undefined ? (params.pkce ?? createPkce()).challenge : params.codeChallenge,
    code_challenge_method: params.codeChallengeMethod === undefined ? 'S256' : params.codeChallengeMethod,
  };
  for (const [name, value] of Object.entries(query)) {
    if (value !== null) url.searchParams.set(name, value);
  }
  return url;
}

interface StoredCookie {
  name: string;
  value: string;
  path: string;
}

/** One browser's cookies for one origin: path-aware, honours expiry by deletion, nothing more. */
export class CookieJar {
  readonly #cookies = new Map<string, StoredCookie>();

  /** The `Cookie` header for a request to `url`. */
  header(url: URL): string {
    return [...this.#cookies.values()]
      .filter((cookie) => url.pathname === cookie.path || url.pathname.startsWith(cookie.path.endsWith('/') ? cookie.path : `${cookie.path}/`))
      .map((cookie) => `${cookie.name}=${cookie.value}`)
      .join('; ');
  }

  /** Takes the `Set-Cookie` headers of a response to `url`. */
  store(url: URL, setCookies: string[]): void {
    for (const line of setCookies) {
      const [pair = '', ...attributes] = line.split(';');
      const separator = pair.indexOf('=');
      if (separator < 1) continue;
      const name = pair.slice(0, separator).trim();
      const value = pair.slice(separator + 1).trim();
      let path = url.pathname.replace(/\/[^/]*$/, '') || '/';
      let expired = value === '';
      for (const attribute of attributes) {
        const [rawKey = '', ...rest] = attribute.split('=');
        const key = rawKey.trim().toLowerCase();
        const attributeValue = rest.join('=').trim();
        if (key === 'path' && attributeValue.startsWith('/')) path = attributeValue;
        if (key === 'max-age' && Number(attributeValue) <= 0) expired = true;
        if (key === 'expires' && Date.parse(attributeValue) <= Date.now()) expired = true;
      }
      const id = `${path}\n${name}`;
      if (expired) this.#cookies.delete(id);
      else this.#cookies.set(id, { name, value, path });
    }
  }

  /** Names of the cookies held, for assertions. */
  names(): string[] {
    return [...this.#cookies.values()].map((cookie) => cookie.name);
  }
}

/** What opening an interaction page gave: its uid and the CSRF token the page carries. */
export interface OpenedInteraction {
  uid: string;
  url: URL;
  csrfToken: string;
  page: HttpResult;
}

/** Options of a POST step: override the CSRF token, the Origin, the content type or the raw body. */
export interface StepOptions {
  /** `null` sends no `X-CSRF-Token`; default: the token the page carried. */
  csrfToken?: string | null;
  origin?: string;
  contentType?: string;
  rawBody?: string;
}

const maxHops = 10;

/**
 * Drives the gateway's authorization endpoint and consent JSON API with plain `fetch` and one
 * cookie jar, as one browser would: `GET /auth` → `/interaction/:uid` (the page binds the flow to
 * this jar and carries the CSRF token) → `/state`, `/identity`, `/services`, `/decision` → follow
 * `redirectTo` (the provider's `/auth/:uid` resume) to the client's redirect URI.
 */
export class ConsentDriver {
  readonly jar = new CookieJar();
  readonly origin: string;
  readonly #csrf = new Map<string, string>();

  constructor(readonly gatewayUrl: string) {
    this.origin = new URL(gatewayUrl).origin;
  }

  /** One request with this jar's cookies; redirects are not followed. */
  async request(url: URL | string, init: RequestInit = {}): Promise<HttpResult> {
    const target = new URL(url, this.gatewayUrl);
    const headers = new Headers(init.headers);
    const cookie = this.jar.header(target);
    if (cookie) headers.set('cookie', cookie);
    const response = await fetch(target, { ...init, headers, redirect: 'manual' });
    this.jar.store(target, response.headers.getSetCookie());
    const location = response.headers.get('location');
    return { status: response.status, headers: response.headers, location: location === null ? null : new URL(location, target), body: await response.text() };
  }

  /**
   * Follows redirects from `url` while they stay on the gateway. Returns the URL that leaves it
   * (the client's redirect URI) or, as `stoppedAt`, the gateway response that did not redirect.
   */
  async follow(url: URL | string): Promise<{ left: URL } | { stoppedAt: URL; response: HttpResult }> {
    let current = new URL(url, this.gatewayUrl);
    for (let hop = 0; hop < maxHops; hop += 1) {
      if (current.origin !== this.origin) return { left: current };
      const response = await this.request(current);
      if (!response.location) return { stoppedAt: current, response };
      current = response.location;
    }
    throw new Error(`more than ${maxHops} redirects from ${String(url)}`);
  }

  /** Like {@link follow}, but the redirects must end at the client's redirect URI. */
  async followToClient(url: URL | string): Promise<URL> {
    const result = await this.follow(url);
    if ('left' in result) return result.left;
    throw new Error(`stopped at ${result.stoppedAt.href} with ${result.response.status}: ${result.response.body.slice(0, 300)}`);
  }

  /** Sends the authorization request and opens the interaction page it leads to. */
  async start(authorization: URL | string): Promise<OpenedInteraction> {
    const result = await this.follow(authorization);
    if ('left' in result) throw new Error(`the authorization request left the gateway for ${result.left.href}`);
    const match = /^\/interaction\/([^/]+)$/.exec(result.stoppedAt.pathname);
    if (!match?.[1] || result.response.status !== 200) {
      throw new Error(`expected the consent page, got ${result.stoppedAt.href} with ${result.response.status}: ${result.response.body.slice(0, 300)}`);
    }
    const uid = match[1];
    const csrfToken = /csrf-token="([^"]*)"/.exec(result.response.body)?.[1];
    if (!csrfToken) throw new Error('the consent page carries no csrf-token attribute');
    this.#csrf.set(uid, csrfToken);
    return { uid, url: result.stoppedAt, csrfToken, page: result.response };
  }

  /** Opens `/interaction/:uid` directly (another tab, a pasted link). */
  async open(uid: string): Promise<HttpResult> {
    const page = await this.request(`/interaction/${uid}`);
    const csrfToken = /csrf-token="([^"]*)"/.exec(page.body)?.[1];
    if (csrfToken) this.#csrf.set(uid, csrfToken);
    return page;
  }

  /** `GET /interaction/:uid/state`. */
  async state(uid: string): Promise<ApiResult<FlowView & ErrorBody>> {
    return this.#json(await this.request(`/interaction/${uid}/state`, { headers: { accept: 'application/json' } }));
  }

  /** `POST /interaction/:uid/<step>` with the page's CSRF token unless `options` say otherwise. */
  async post(uid: string, step: 'identity' | 'services' | 'decision', body: unknown, options: StepOptions = {}): Promise<ApiResult<FlowView & ErrorBody>> {
    const headers: Record<string, string> = { 'content-type': options.contentType ?? 'application/json', accept: 'application/json' };
    const csrfToken = options.csrfToken === undefined ? this.#csrf.get(uid) : options.csrfToken;
    if (csrfToken) headers['x-csrf-token'] = csrfToken;
    if (options.origin) headers.origin = options.origin;
    return this.#json(await this.request(`/interaction/${uid}/${step}`, { method: 'POST', headers, body: options.rawBody ?? JSON.stringify(body) }));
  }

  /**
   * `POST /interaction/:uid/connect` for `upstream` on the services step: returns the upstream's
   * authorization URL the browser is sent to.
   */
  async connect(uid: string, upstream: string): Promise<string> {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    const csrfToken = this.#csrf.get(uid);
    if (csrfToken) headers['x-csrf-token'] = csrfToken;
    const answer = await this.request(`/interaction/${uid}/connect`, { method: 'POST', headers, body: JSON.stringify({ upstream }) });
    if (answer.status !== 200) throw new Error(`connect answered ${answer.status}: ${answer.body.slice(0, 300)}`);
    return (JSON.parse(answer.body) as { redirectTo: string }).redirectTo;
  }

  /**
   * The whole consent: sign in as `user`, choose `upstreams` (default: every offered one), decide,
   * and follow the answer to the client's redirect URI. Returns that URL (`code` or `error`).
   */
  async consent(authorization: URL | string, options: { user: string; upstreams?: string[]; decision?: 'approve' | 'deny' }): Promise<URL> {
    const { uid } = await this.start(authorization);
    const identity = await this.post(uid, 'identity', { userId: options.user });
    if (identity.status !== 200) throw new Error(`identity step answered ${identity.status}: ${JSON.stringify(identity.body)}`);
    const upstreams = options.upstreams ?? identity.body.upstreams.map((upstream) => upstream.name);
    const services = await this.post(uid, 'services', { upstreams });
    if (services.status !== 200) throw new Error(`services step answered ${services.status}: ${JSON.stringify(services.body)}`);
    if (services.body.redirectTo) return this.followToClient(services.body.redirectTo);
    const decided = await this.post(uid, 'decision', { decision: options.decision ?? 'approve' });
    if (decided.status !== 200 || !decided.body.redirectTo) throw new Error(`decision step answered ${decided.status}: ${JSON.stringify(decided.body)}`);
    return this.followToClient(decided.body.redirectTo);
  }

  #json<T>(result: HttpResult): ApiResult<T> {
    let body: unknown;
    try {
      body = JSON.parse(result.body);
    } catch {
      throw new Error(`expected JSON, got ${result.status}: ${result.body.slice(0, 300)}`);
    }
    return { status: result.status, headers: result.headers, body: body as T };
  }
}

/** A token endpoint answer (RFC 6749 §5.1 / §5.2). */
export interface TokenResult {
  status: number;
  headers: Headers;
  body: { access_token?: string; refresh_token?: string; token_type?: string; scope?: string; expires_in?: number } & Partial<ErrorBody>;
}

/** POSTs a form to a gateway endpoint (`/token`, `/token/revocation`) as a public client would. */
export async function postForm(gatewayUrl: string, path: string, form: Record<string, string | undefined>): Promise<TokenResult> {
  const body = new URLSearchParams();
  for (const [name, value] of Object.entries(form)) {
    if (value !== undefined) body.set(name, value);
  }
  const response = await fetch(new URL(path, gatewayUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body,
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: (text ? JSON.parse(text) : {}) as TokenResult['body'] };
}

/** Registers a public client (RFC 7591) and returns its `client_id`. */
export async function registerClient(gatewayUrl: string, redirectUris: string[], clientName = 'OAuth rules test client'): Promise<string> {
  const response = await fetch(new URL('/reg', gatewayUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: clientName,
      redirect_uris: redirectUris,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    }),
  });
  const body = (await response.json()) as { client_id?: string };
  if (response.status !== 201 || !body.client_id) throw new Error(`registration answered ${response.status}: ${JSON.stringify(body)}`);
  return body.client_id;
}

/** An MCP `initialize` POST to `<gateway>/mcp`, with the bearer token when given. */
export async function initializeMcp(gatewayUrl: string, accessToken?: string): Promise<{ status: number; headers: Headers; body: string }> {
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  if (accessToken !== undefined) headers.authorization = `Bearer ${accessToken}`;
  const response = await fetch(`${gatewayUrl}/mcp`, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'oauth-rules-test', version: '1.0.0' } },
    }),
  });
  return { status: response.status, headers: response.headers, body: await response.text() };
}

import type { RawRequest, RawResponse } from './raw-http.js';

/**
 * The kind of answer a hostile request must get:
 * - `oauth-json`: 4xx with an OAuth error body `{error, error_description?}` (RFC 6749 §5.2);
 * - `bearer`: 401/403 `{error}` with a `WWW-Authenticate: Bearer` challenge (RFC 6750 §3);
 * - `jsonrpc`: a JSON-RPC error (JSON or one SSE event) whose `id` is the request's (`null` when it had none
 *   or could not be read), with a 4xx status or 200;
 * - `html`: 4xx with a readable HTML page (a heading, no stack trace);
 * - `authorize`: the authorization endpoint's answers: an HTML error page, or a redirect that stays on
 *   the gateway or returns an `error` to a registered redirect URI;
 * - `error`: 4xx in any of the shapes above (paths that may land on any router);
 * - `harmless`: any status below 500 (the case's own check says what must hold).
 */
export type Expectation = 'oauth-json' | 'bearer' | 'jsonrpc' | 'html' | 'authorize' | 'error' | 'harmless';

/**
 * What a case may do to the store: nothing (`unchanged`, every rejected request), delete rows only
 * (`removals`: replaying a code or a rotated refresh token revokes its whole grant, RFC 6749 §4.1.2,
 * OAuth 2.1 §4.3.1), or anything (`accepted`: the request was legitimately served, e.g. a
 * registration with an odd but valid name).
 */
export type StorePolicy = 'unchanged' | 'removals' | 'accepted';

/** One generated hostile request with what it must get. */
export interface HostileCase {
  family: string;
  /** The endpoint as the report names it (`POST /token`, `GET /interaction/:uid`). */
  endpoint: string;
  request: RawRequest;
  expect: Expectation;
  /**
   * For `jsonrpc`: the id of a well-formed request, which its error must carry. Left out when the
   * request's id cannot be trusted (no valid request): the error carries `null` then (JSON-RPC 2.0
   * §5), or the id as sent.
   */
  rpcId?: string | number;
  /** Default `unchanged`; a function decides from the answer (an authorization request the gateway accepted). */
  store?: StorePolicy | ((response: Extract<RawResponse, { kind: 'response' }>) => StorePolicy);
  /** A further property of the answer; returns what is wrong, or undefined. */
  check?: (response: Extract<RawResponse, { kind: 'response' }>) => string | undefined;
}

type Answer = Extract<RawResponse, { kind: 'response' }>;

const header = (response: Answer, name: string) => {
  const value = response.headers[name];
  return Array.isArray(value) ? value.join(', ') : (value ?? '');
};

function json(response: Answer): unknown {
  try {
    return JSON.parse(response.body);
  } catch {
    return undefined;
  }
}

/** The JSON-RPC message of a JSON body or of the first SSE `data:` line. */
function jsonRpcMessage(response: Answer): unknown {
  if (header(response, 'content-type').includes('text/event-stream')) {
    const line = response.body.split('\n').find((candidate) => candidate.startsWith('data:'));
    if (!line) return undefined;
    try {
      return JSON.parse(line.slice(5));
    } catch {
      return undefined;
    }
  }
  return json(response);
}

const is4xx = (status: number) => status >= 400 && status < 500;

function oauthJsonProblem(response: Answer): string | undefined {
  if (!is4xx(response.status)) return `status ${response.status}, not 4xx`;
  const body = json(response) as { error?: unknown } | undefined;
  if (!header(response, 'content-type').includes('json') || typeof body?.error !== 'string' || !/^[\x20-\x7e]+$/.test(body.error)) return 'no OAuth error JSON';
  return undefined;
}

function htmlProblem(response: Answer): string | undefined {
  if (!is4xx(response.status)) return `status ${response.status}, not 4xx`;
  if (!header(response, 'content-type').startsWith('text/html')) return `content type ${header(response, 'content-type') || 'none'}, not an HTML page`;
  if (!/<h1[^>]*>[^<]+<\/h1>|<title>[^<]+<\/title>/i.test(response.body)) return 'an HTML page without a heading or title';
  if (/\bat [\w.<>]+ \(|node_modules/.test(response.body)) return 'a stack trace in the page';
  return undefined;
}

function jsonRpcProblem(response: Answer, id: string | number | undefined): string | undefined {
  if (response.status !== 200 && !is4xx(response.status)) return `status ${response.status}, not 4xx or 200`;
  const message = jsonRpcMessage(response) as { jsonrpc?: unknown; error?: { code?: unknown; message?: unknown }; id?: unknown } | undefined;
  if (message?.jsonrpc !== '2.0' || typeof message.error?.code !== 'number' || typeof message.error.message !== 'string') return 'no JSON-RPC error';
  if (id !== undefined && message.id !== id) return `JSON-RPC error id ${JSON.stringify(message.id)}, not the request's ${JSON.stringify(id)}`;
  if (id === undefined && message.id !== null && typeof message.id !== 'string' && typeof message.id !== 'number') return `JSON-RPC error id ${JSON.stringify(message.id)}`;
  return undefined;
}

/** What is wrong with `response` for `kase`; undefined when nothing is. */
export function judge(kase: HostileCase, response: RawResponse, timeoutMs: number): string | undefined {
  if (response.kind === 'timeout') return `no answer within ${timeoutMs} ms`;
  if (response.kind === 'error') return `connection failed: ${response.message}`;
  if (response.status >= 500) return `status ${response.status}: ${response.body.slice(0, 200)}`;
  // Node's HTTP parser refuses an oversized request head itself, before any application code.
  if (response.status === 431) return kase.check?.(response);
  let problem: string | undefined;
  switch (kase.expect) {
    case 'oauth-json':
      problem = oauthJsonProblem(response);
      break;
    case 'bearer':
      problem = response.status !== 401 && response.status !== 403 ? `status ${response.status}, not 401/403` : oauthJsonProblem(response);
      if (!problem && !/^Bearer /.test(header(response, 'www-authenticate'))) problem = 'no WWW-Authenticate: Bearer challenge';
      break;
    case 'jsonrpc':
      problem = jsonRpcProblem(response, kase.rpcId);
      break;
    case 'html':
      problem = htmlProblem(response);
      break;
    case 'authorize':
      problem = response.status >= 300 && response.status < 400 ? undefined : htmlProblem(response) && oauthJsonProblem(response);
      break;
    case 'error':
      problem = htmlProblem(response) && oauthJsonProblem(response) && jsonRpcProblem(response, undefined);
      break;
    case 'harmless':
      break;
  }
  problem ??= kase.check?.(response);
  return problem && `${problem} (got ${response.status} ${header(response, 'content-type')}: ${response.body.slice(0, 160).replace(/\s+/g, ' ')})`;
}

/** The store policy of a case for the answer it got. */
export function storePolicyOf(kase: HostileCase, response: RawResponse): StorePolicy {
  if (response.kind !== 'response') return 'unchanged';
  return typeof kase.store === 'function' ? kase.store(response) : (kase.store ?? 'unchanged');
}

/** The status class for the report: `2xx` … `5xx`, `timeout`, `error`. */
export function statusClass(response: RawResponse): string {
  return response.kind === 'response' ? `${Math.floor(response.status / 100)}xx` : response.kind;
}

export { header as responseHeader };

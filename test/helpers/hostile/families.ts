import fc from 'fast-check';
import type { HostileCase, StorePolicy } from './oracle.js';
import type { RawRequest } from './raw-http.js';

/** A browser as the corpus uses it: the `Cookie` header it sends to a path. */
export type CookiesFor = (path: string) => string;

/** A consent flow open in one browser, with the CSRF token its page carried. */
export interface OpenFlow {
  uid: string;
  csrf: string;
  cookies: CookiesFor;
}

/** An authorization code with what it was issued for. */
export interface IssuedCode {
  code: string;
  verifier: string;
  clientId: string;
  redirectUri: string;
  resource: string;
}

/** The real state the hostile requests aim at: a running gateway's clients, tokens, flows and sessions. */
export interface Fixtures {
  base: string;
  /** `host:port` of the gateway. */
  host: string;
  upstreams: { oauth: string; none: string };
  client: { id: string; redirectUri: string };
  otherClient: { id: string; redirectUri: string };
  /** Live access tokens: `mcp` for `/mcp`, `none` for `/mcp/<upstreams.none>`. */
  tokens: { mcp: string; none: string };
  adminToken: string;
  /** A flow open in browser B, and one open in browser D. */
  flow: OpenFlow;
  otherFlow: OpenFlow;
  /** Browser B, signed in, with the CSRF token of its My connections page. */
  session: { cookies: CookiesFor; csrf: string };
  /** The `state` of an upstream authorization pending in browser B's flow. */
  upstreamState: string;
  /** Codes already exchanged once. */
  usedCodes: IssuedCode[];
  /** Refresh tokens already rotated once, with their client. */
  usedRefreshTokens: { token: string; clientId: string }[];
  /** A code not exchanged yet: PKCE abuse must leave it usable. */
  freshCode: IssuedCode;
  /** A 2025-era MCP session opened with `tokens.mcp`. */
  mcpSession: string;
  /** A URL elicitation of another user than browser B's. */
  foreignElicitation: string;
}

/** The families of the corpus, each with the arbitrary of its cases. */
export type Family = (fx: Fixtures) => fc.Arbitrary<HostileCase>;

const form = (fields: Record<string, string | undefined>) => {
  const body = new URLSearchParams();
  for (const [name, value] of Object.entries(fields)) if (value !== undefined) body.set(name, value);
  return body.toString();
};
const formHeaders = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
const jsonHeaders = { 'content-type': 'application/json', accept: 'application/json' };
const mcpHeaders = (token: string) => ({ 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${token}` });
const modernMeta = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientInfo': { name: 'hostile', version: '1.0.0' },
  'io.modelcontextprotocol/clientCapabilities': {},
};

/** Percent-encoded pieces no decoder should trip on: NUL, overlong and surrogate UTF-8, CR/LF, bidi overrides, lone `%`. */
const nastyEncoded = fc.constantFrom('%00', '%C0%AE', '%C0%80', '%ED%A0%80', '%FF%FE', '%E2%80%AE', '%0D%0A', '%25', '%', '%%32%65', '%2e%2e%2f', '%F0%9F%98%80', '%EF%BF%BF', '%u0000', '%E2%80%A8', '%C2%85');
/** An already-encoded query value built from nasty pieces and random text. */
const encodedValue = fc
  .array(fc.oneof(nastyEncoded, fc.string({ maxLength: 8 }).map(encodeURIComponent), fc.string({ unit: 'grapheme', maxLength: 4 }).map(encodeURIComponent)), { minLength: 1, maxLength: 6 })
  .map((pieces) => pieces.join(''));
/** Decoded text with NUL, control characters, bidi overrides, noncharacters or astral characters in it. */
const nastyText = fc
  .tuple(fc.string({ maxLength: 6 }), fc.constantFrom('\u0000', '\u0001', '\u001b[31m', '\u007f', '\u202e', '\ufeff', '\uffff', '\u2028', '𝕏', '\r\n'), fc.string({ unit: 'grapheme', maxLength: 6 }))
  .map(([a, b, c]) => `a${a}${b}${c}`);

/** Text with a control character inside: never a user name. */
const controlText = fc
  .tuple(fc.string({ minLength: 1, maxLength: 6 }), fc.integer({ min: 0, max: 0x20 }).map((code) => String.fromCharCode(code === 0x20 ? 0x7f : code)), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 6 }))
  .map(([a, control, b]) => `a${a}${control}${b}z`);

/** Text meant to break out of HTML, attributes, Markdown or templates where a client name is shown. */
export const injectionNames = fc.oneof(
  fc.constantFrom(
    '<script>alert(1)</script>',
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    '</title><script>alert(1)</script>',
    '[Click to continue](javascript:alert(1))',
    '![x](https://attacker.example/pixel.png)',
    '**Official** _Gateway_ `admin`',
    '<a href="https://attacker.example">Approve</a>',
    '{{constructor.constructor("alert(1)")()}}',
    '${7*7}',
    '<!--',
    '&lt;script&gt;',
    'javascript:alert(1)',
    '<style>*{display:none}</style>',
  ),
  fc.tuple(fc.constantFrom('<b>', '<i onclick=x>', '[a](b)', '# ', '<iframe src=//x>'), fc.string({ unit: 'grapheme', maxLength: 10 })).map(([tag, text]) => `${tag}${text}`),
);

const post = (path: string, headers: Record<string, string>, body: string | Buffer, extra: Partial<RawRequest> = {}): RawRequest => ({ method: 'POST', path, headers, body, ...extra });
const get = (path: string, headers: Record<string, string> = {}): RawRequest => ({ method: 'GET', path, headers });

/** The consent steps' JSON API and My connections' POSTs, as browser B (cookie and CSRF token right). */
function pageApiTargets(fx: Fixtures): { endpoint: string; path: string; headers: Record<string, string> }[] {
  const step = (name: string) => {
    const path = `/interaction/${fx.flow.uid}/${name}`;
    return { endpoint: `POST /interaction/:uid/${name}`, path, headers: { cookie: fx.flow.cookies(path), 'x-csrf-token': fx.flow.csrf } };
  };
  const connections = (endpoint: string, path: string) => ({ endpoint, path, headers: { cookie: fx.session.cookies(path), 'x-csrf-token': fx.session.csrf } });
  return [
    step('identity'),
    step('services'),
    step('decision'),
    step('connect'),
    connections('POST /connections/api/clients/:id/revoke', `/connections/api/clients/${encodeURIComponent(fx.client.id)}/revoke`),
    connections('POST /connections/api/upstreams/:name/disconnect', `/connections/api/upstreams/${fx.upstreams.oauth}/disconnect`),
    connections('POST /connections/api/upstreams/:name/connect', `/connections/api/upstreams/${fx.upstreams.oauth}/connect`),
  ];
}

/** JSON that does not parse, or parses to no object: never a step's input. */
const malformedJson = fc.oneof(
  fc.constantFrom('{', '{"userId":', '{"a":1,}', "{'a':1}", '{"a":1}}', 'nul', 'NaN', '[1,2', '"\\ud800"x', '\ufeff{"a"', '{"a":"\\x00"}', '1e999999', '{"a":01}', '\u0000'),
  fc.integer({ min: 1000, max: 20000 }).map((depth) => '['.repeat(depth) + ']'.repeat(depth)),
  fc.integer({ min: 1000, max: 20000 }).map((depth) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)),
  fc.constantFrom('[]', '[{"userId":"mallory"}]', '"text"', '42', 'true', 'null'),
  fc.string({ maxLength: 30 }).map((text) => `{${text}`),
);

/** Malformed and oversized JSON bodies at every endpoint that reads JSON. */
export const malformedJsonFamily: Family = (fx) =>
  fc.oneof(
    fc.tuple(fc.constantFrom(...pageApiTargets(fx)), malformedJson).map(
      ([target, body]): HostileCase => ({ family: 'malformed/oversized JSON', endpoint: target.endpoint, request: post(target.path, { ...jsonHeaders, ...target.headers }, body), expect: 'oauth-json' }),
    ),
    fc.tuple(fc.constantFrom(...pageApiTargets(fx)), fc.integer({ min: 17 * 1024, max: 200 * 1024 })).map(
      ([target, size]): HostileCase => ({
        family: 'malformed/oversized JSON',
        endpoint: target.endpoint,
        request: post(target.path, { ...jsonHeaders, ...target.headers }, JSON.stringify({ userId: 'x'.repeat(size) })),
        expect: 'oauth-json',
      }),
    ),
    malformedJson.map((body): HostileCase => ({ family: 'malformed/oversized JSON', endpoint: 'POST /reg', request: post('/reg', jsonHeaders, body), expect: 'oauth-json' })),
    fc.integer({ min: 17 * 1024, max: 64 * 1024 }).map(
      (size): HostileCase => ({
        family: 'malformed/oversized JSON',
        endpoint: 'POST /reg',
        request: post('/reg', jsonHeaders, JSON.stringify({ client_name: 'x'.repeat(size), redirect_uris: ['http://127.0.0.1:9/cb'] })),
        expect: 'oauth-json',
      }),
    ),
    fc.tuple(fc.constantFrom('/mcp', `/mcp/${fx.upstreams.none}`), malformedJson.filter((body) => !/^(\[\]|\[\{|"text"|42|true|null)/.test(body))).map(
      ([path, body]): HostileCase => ({
        family: 'malformed/oversized JSON',
        endpoint: path === '/mcp' ? 'POST /mcp' : 'POST /mcp/<upstream>',
        request: post(path, mcpHeaders(path === '/mcp' ? fx.tokens.mcp : fx.tokens.none), body),
        expect: 'jsonrpc',
        }),
    ),
    // Bodies without Content-Length, sent chunked: their size is only known once read.
    fc.tuple(fc.constantFrom(...pageApiTargets(fx)), fc.constantFrom('{"userId":', '[]', 'x'.repeat(40_000))).map(
      ([target, body]): HostileCase => ({ family: 'malformed/oversized JSON', endpoint: target.endpoint, request: post(target.path, { ...jsonHeaders, ...target.headers }, body, { chunked: true }), expect: 'oauth-json' }),
    ),
    fc.constantFrom('{"client_name":"x","redirect_uris":["http://127.0.0.1:9/cb"]}', '{').map(
      (body): HostileCase => ({ family: 'malformed/oversized JSON', endpoint: 'POST /reg', request: post('/reg', jsonHeaders, body, { chunked: true }), expect: 'oauth-json' }),
    ),
    fc.constantFrom('{', 'x'.repeat(5 * 1024 * 1024)).map(
      (body): HostileCase => ({ family: 'malformed/oversized JSON', endpoint: 'POST /mcp', request: post('/mcp', mcpHeaders(fx.tokens.mcp), body, { chunked: true }), expect: 'jsonrpc' }),
    ),
    fc.constantFrom(4 * 1024 * 1024 + 10, 5 * 1024 * 1024).map(
      (size): HostileCase => ({
        family: 'malformed/oversized JSON',
        endpoint: 'POST /mcp',
        request: post('/mcp', mcpHeaders(fx.tokens.mcp), JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { pad: 'x'.repeat(size) } })),
        expect: 'jsonrpc',
        }),
    ),
    fc.tuple(fc.constantFrom('/token', '/token/revocation'), malformedJson).map(
      ([path, body]): HostileCase => ({ family: 'malformed/oversized JSON', endpoint: `POST ${path}`, request: post(path, jsonHeaders, body), expect: 'oauth-json' }),
    ),
  );

/** Bodies that would be accepted as JSON, sent under another content type: a form post from another site must get nowhere. */
export const wrongContentTypeFamily: Family = (fx) => {
  const types = fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'text/html', 'application/jsonx', 'json', 'application/octet-stream', '');
  const stepBodies: Record<string, string> = { identity: '{"userId":"mallory"}', services: '{"upstreams":[]}', decision: '{"decision":"approve"}', connect: '{"upstream":"github"}' };
  return fc.oneof(
    fc.tuple(fc.constantFrom(...pageApiTargets(fx)), types).map(([target, type]): HostileCase => {
      const step = /\/(identity|services|decision|connect)$/.exec(target.path)?.[1];
      const headers: Record<string, string> = { accept: 'application/json', ...target.headers };
      if (type) headers['content-type'] = type;
      return { family: 'wrong content types', endpoint: target.endpoint, request: post(target.path, headers, step ? (stepBodies[step] ?? '{}') : '{}'), expect: 'oauth-json' };
    }),
    fc.tuple(fc.constantFrom('/mcp', `/mcp/${fx.upstreams.none}`), types).map(([path, type]): HostileCase => {
      const headers = mcpHeaders(path === '/mcp' ? fx.tokens.mcp : fx.tokens.none);
      const { 'content-type': _, ...rest } = headers;
      return {
        family: 'wrong content types',
        endpoint: path === '/mcp' ? 'POST /mcp' : 'POST /mcp/<upstream>',
        request: post(path, type ? { ...rest, 'content-type': type } : rest, JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list', params: { _meta: modernMeta } })),
        expect: 'jsonrpc',
        };
    }),
    types.map(
      (type): HostileCase => ({
        family: 'wrong content types',
        endpoint: 'POST /reg',
        request: post('/reg', type ? { 'content-type': type } : {}, JSON.stringify({ client_name: 'x', redirect_uris: ['http://127.0.0.1:9/cb'] })),
        expect: 'oauth-json',
      }),
    ),
    fc.tuple(fc.constantFrom('/token', '/token/revocation'), fc.constantFrom('application/json', 'text/plain', 'multipart/form-data; boundary=x')).map(
      ([path, type]): HostileCase => ({
        family: 'wrong content types',
        endpoint: `POST ${path}`,
        request: post(path, { 'content-type': type }, JSON.stringify({ grant_type: 'refresh_token', refresh_token: 'x', token: 'x', client_id: fx.client.id })),
        expect: 'oauth-json',
      }),
    ),
  );
};

/** JSON-RPC ids of every wrong type, and fine ones. */
const anyId = fc.oneof(fc.integer(), fc.string({ maxLength: 20 }), fc.constant(null), fc.boolean(), fc.double(), fc.constant({}), fc.constant([1]), fc.constant('x'.repeat(2000)));
const validId = fc.oneof(fc.integer({ min: -1e9, max: 1e9 }), fc.string({ minLength: 1, maxLength: 40 }));

/** JSON-RPC garbage on `/mcp` and `/mcp/<upstream>` with a valid token: bad ids, batches, missing or wrong-typed members. */
export const jsonRpcGarbageFamily: Family = (fx) => {
  const endpoints = fc.constantFrom({ path: '/mcp', token: fx.tokens.mcp, endpoint: 'POST /mcp' }, { path: `/mcp/${fx.upstreams.none}`, token: fx.tokens.none, endpoint: 'POST /mcp/<upstream>' });
  const unreadable = fc.oneof(
    fc.tuple(anyId, fc.oneof(fc.integer(), fc.constant(null), fc.constant({}), fc.constant(['tools/list']))).map(([id, method]) => ({ jsonrpc: '2.0', id, method })),
    anyId.map((id) => ({ jsonrpc: '2.0', id })),
    fc.tuple(validId, fc.constantFrom('1.0', 2, null, undefined)).map(([id, jsonrpc]) => ({ jsonrpc, id, method: 'tools/list' })),
    fc.constantFrom({}, { jsonrpc: '2.0' }, { result: 1 }, { jsonrpc: '2.0', error: 'x' }),
  );
  const batches = fc.array(fc.oneof(fc.integer(), fc.constant(null), fc.record({ jsonrpc: fc.constant('2.0'), id: validId, method: fc.constantFrom('tools/list', 'ping', 'initialize') })), { maxLength: 5 });
  return fc.oneof(
    fc.tuple(endpoints, unreadable, fc.boolean()).map(([target, body, session]): HostileCase => ({
      family: 'JSON-RPC garbage',
      endpoint: target.endpoint,
      request: post(target.path, { ...mcpHeaders(target.token), ...(session && target.path === '/mcp' ? { 'mcp-session-id': fx.mcpSession } : {}) }, JSON.stringify(body)),
      expect: 'jsonrpc',
    })),
    fc.tuple(endpoints, batches, fc.boolean()).map(([target, body, session]): HostileCase => ({
      family: 'JSON-RPC garbage',
      endpoint: target.endpoint,
      request: post(target.path, { ...mcpHeaders(target.token), ...(session && target.path === '/mcp' ? { 'mcp-session-id': fx.mcpSession } : {}) }, JSON.stringify(body)),
      // A batch has no one id; any error or accepted batch answer without a 5xx will do. A served
      // batch is an accepted request: its `tools/list` may open the link to connect an upstream.
      expect: 'harmless',
      store: (response) => (response.status === 200 ? 'accepted' : 'unchanged'),
    })),
    // Well-formed requests with a readable id whose method or params are wrong: the error carries that id.
    fc
      .tuple(endpoints, validId, fc.constantFrom('tools/lisst', 'no/such/method', 'tools/call', 'resources/read', 'prompts/get', ''), fc.oneof(fc.constant('string'), fc.constant(42), fc.constant([1, 2]), fc.record({ name: fc.oneof(fc.integer(), fc.constant('nope__nothing')), uri: fc.integer() })), fc.constantFrom('modern', 'session'))
      .map(([target, id, method, params, era]): HostileCase => {
        const modern = era === 'modern' || target.path !== '/mcp';
        const headers = { ...mcpHeaders(target.token), ...(modern ? { 'mcp-protocol-version': '2026-07-28' } : { 'mcp-session-id': fx.mcpSession }) };
        const withMeta = modern && typeof params === 'object' && !Array.isArray(params) ? { ...params, _meta: modernMeta } : params;
        return {
          family: 'JSON-RPC garbage',
          endpoint: target.endpoint,
          request: post(target.path, headers, JSON.stringify({ jsonrpc: '2.0', id, method, params: withMeta })),
          expect: 'jsonrpc',
          rpcId: id,
        };
      }),
    // A request without a session or an envelope, with an unknown session, or a GET/DELETE of a session that is not there.
    fc.tuple(validId, fc.constantFrom('none', 'unknown')).map(([id, session]): HostileCase => ({
      family: 'JSON-RPC garbage',
      endpoint: 'POST /mcp',
      request: post('/mcp', { ...mcpHeaders(fx.tokens.mcp), ...(session === 'unknown' ? { 'mcp-session-id': 'no-such-session' } : {}) }, JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/list' })),
      expect: 'jsonrpc',
      rpcId: id,
    })),
    fc.constantFrom('GET', 'DELETE', 'PUT', 'PATCH').map((method): HostileCase => ({
      family: 'JSON-RPC garbage',
      endpoint: `${method} /mcp`,
      request: { method, path: '/mcp', headers: { ...mcpHeaders(fx.tokens.mcp), 'mcp-session-id': 'no-such-session' } },
      expect: 'jsonrpc',
    })),
  );
};

/** `redirect_uri` variants of a registered `http://127.0.0.1:<port>/callback`: none may receive a code or an error. */
export const openRedirectFamily: Family = (fx) => {
  const registered = new URL(fx.client.redirectUri);
  const variants = fc.oneof(
    fc.constantFrom(
      'https://attacker.example/callback',
      `http://attacker.example${registered.pathname}`,
      `//attacker.example${registered.pathname}`,
      `${registered.origin}@attacker.example${registered.pathname}`,
      `http://127.0.0.1:${registered.port}@attacker.example/`,
      `${fx.client.redirectUri}/../../evil`,
      `${fx.client.redirectUri}%2F..%2Fevil`,
      `${fx.client.redirectUri}?next=https://attacker.example`,
      `${fx.client.redirectUri}#https://attacker.example`,
      `${fx.client.redirectUri}.attacker.example`,
      `${fx.client.redirectUri.toUpperCase()}`,
      `${fx.client.redirectUri} `,
      `${fx.client.redirectUri}\u0000`,
      `http://127.0.0.1.attacker.example:${registered.port}${registered.pathname}`,
      `http://0x7f000001:${registered.port}${registered.pathname}`,
      `http://[::ffff:127.0.0.1]:${registered.port}${registered.pathname}`,
      `javascript:alert(1)//${fx.client.redirectUri}`,
      `data:text/html,<script>alert(1)</script>`,
      `http://localhost:${registered.port}${registered.pathname}`,
      `${fx.otherClient.redirectUri}`,
      `${registered.origin}\\@attacker.example${registered.pathname}`,
      `https://attacker.example%2F@127.0.0.1:${registered.port}${registered.pathname}`,
      '',
    ),
    fc.webUrl().filter((url) => !url.startsWith(fx.client.redirectUri)),
    fc.string({ maxLength: 12 }).map((suffix) => `${fx.client.redirectUri}${suffix}`).filter((uri) => uri !== fx.client.redirectUri),
  );
  return fc.tuple(variants, fc.boolean()).map(([redirectUri, twice]): HostileCase => {
    const query = new URLSearchParams({ response_type: 'code', client_id: fx.client.id, redirect_uri: redirectUri, scope: 'mcp:tools', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', state: 'st' });
    if (twice) query.append('redirect_uri', fx.client.redirectUri);
    return {
      family: 'open redirect',
      endpoint: 'GET /auth',
      request: get(`/auth?${query}`),
      expect: 'authorize',
      // An empty redirect_uri counts as none, and a client with one registered URI gets that one (OAuth 2.1 §4.1.1).
      store: opensFlow(fx),
      check: (response) => redirectProblem(fx, response.status, response.headers.location),
    };
  });
};

/** An authorization request the provider accepted opens a flow (its interaction is stored); any other answer changes nothing. */
const opensFlow =
  (fx: Fixtures) =>
  (response: { status: number; headers: Record<string, string | string[] | undefined> }): StorePolicy =>
    response.status >= 300 && response.status < 400 && /^\/interaction\//.test(new URL(String(response.headers.location), fx.base).pathname) ? 'accepted' : 'unchanged';

/** A redirect may stay on the gateway or return to a registered redirect URI, nowhere else. */
function redirectProblem(fx: Fixtures, status: number, location: string | string[] | undefined): string | undefined {
  if (status < 300 || status >= 400) return undefined;
  const target = new URL(String(location), fx.base);
  if (target.origin === fx.base) return undefined;
  const back = `${target.origin}${target.pathname}`;
  if (back === fx.client.redirectUri) return undefined;
  return `redirected off the gateway to ${target.href}`;
}

/** Replays of codes already exchanged, in every variant; the first replay of a code revokes what it issued. */
export const codeReplayFamily: Family = (fx) =>
  fc
    .tuple(
      fc.constantFrom(...fx.usedCodes),
      fc.constantFrom('exact', 'other-verifier', 'no-verifier', 'other-client', 'other-redirect', 'other-resource', 'tampered', 'no-redirect'),
    )
    .map(([issued, variant]): HostileCase => {
      const fields: Record<string, string | undefined> = {
        grant_type: 'authorization_code',
        code: issued.code,
        code_verifier: issued.verifier,
        redirect_uri: issued.redirectUri,
        client_id: issued.clientId,
        resource: issued.resource,
      };
      if (variant === 'other-verifier') fields.code_verifier = 'A'.repeat(43);
      if (variant === 'no-verifier') fields.code_verifier = undefined;
      if (variant === 'other-client') fields.client_id = fx.otherClient.id;
      if (variant === 'other-redirect') fields.redirect_uri = fx.otherClient.redirectUri;
      if (variant === 'other-resource') fields.resource = `${fx.base}/mcp/${fx.upstreams.none}`;
      if (variant === 'tampered') fields.code = `${issued.code.slice(0, -2)}AA`;
      if (variant === 'no-redirect') fields.redirect_uri = undefined;
      return { family: 'code replay', endpoint: 'POST /token', request: post('/token', formHeaders, form(fields)), expect: 'oauth-json', store: 'removals' };
    });

/** Refresh tokens already rotated, reused in every variant; a reuse revokes the grant. */
export const refreshReuseFamily: Family = (fx) =>
  fc
    .tuple(fc.constantFrom(...fx.usedRefreshTokens), fc.constantFrom('exact', 'other-client', 'resource', 'scope', 'access-token', 'tampered', 'twice'))
    .map(([used, variant]): HostileCase => {
      const fields: Record<string, string | undefined> = { grant_type: 'refresh_token', refresh_token: used.token, client_id: used.clientId };
      if (variant === 'other-client') fields.client_id = fx.otherClient.id;
      if (variant === 'resource') fields.resource = `${fx.base}/mcp/${fx.upstreams.none}`;
      if (variant === 'scope') fields.scope = 'mcp:tools openid offline_access admin';
      if (variant === 'access-token') fields.refresh_token = fx.tokens.mcp;
      if (variant === 'tampered') fields.refresh_token = `${used.token}x`;
      const body = variant === 'twice' ? `${form(fields)}&refresh_token=${encodeURIComponent(used.token)}` : form(fields);
      return { family: 'refresh-token reuse', endpoint: 'POST /token', request: post('/token', formHeaders, body), expect: 'oauth-json', store: 'removals' };
    });

/** Tokens of one endpoint presented at another: `/mcp` ↔ `/mcp/<upstream>`, the admin API, `/metrics`, the token endpoint. */
export const audienceConfusionFamily: Family = (fx) =>
  fc.oneof(
    fc
      .tuple(
        fc.constantFrom(
          { path: '/mcp', token: fx.tokens.none },
          { path: `/mcp/${fx.upstreams.none}`, token: fx.tokens.mcp },
          { path: `/mcp/${fx.upstreams.oauth}`, token: fx.tokens.mcp },
          { path: `/mcp/${fx.upstreams.oauth}`, token: fx.tokens.none },
        ),
        validId,
      )
      .map(([target, id]): HostileCase => ({
        family: 'audience confusion',
        endpoint: target.path === '/mcp' ? 'POST /mcp' : 'POST /mcp/<upstream>',
        request: post(target.path, mcpHeaders(target.token), JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/list', params: { _meta: modernMeta } })),
        expect: 'bearer',
      })),
    fc
      .tuple(fc.constantFrom('/admin/audit', '/admin/users', '/admin/clients', '/admin/connections', '/admin/flows/stuck', '/metrics'), fc.constantFrom(fx.tokens.mcp, fx.tokens.none, fx.freshCode.code))
      .map(([path, token]): HostileCase => ({ family: 'audience confusion', endpoint: `GET ${path}`, request: get(path, { authorization: `Bearer ${token}` }), expect: 'oauth-json' })),
    fc.constantFrom(fx.tokens.mcp, fx.adminToken).map((token): HostileCase => ({
      family: 'audience confusion',
      endpoint: 'POST /token',
      request: post('/token', formHeaders, form({ grant_type: 'refresh_token', refresh_token: token, client_id: fx.client.id })),
      expect: 'oauth-json',
    })),
    fc.constantFrom(fx.tokens.mcp, fx.tokens.none).map((token): HostileCase => ({
      family: 'audience confusion',
      endpoint: 'POST /token/revocation',
      // Another client may not revoke this client's token (RFC 7009 §2.1): refused, or 200 with nothing revoked.
      request: post('/token/revocation', formHeaders, form({ token, client_id: fx.otherClient.id })),
      expect: 'harmless',
    })),
    fc.constantFrom(fx.tokens.mcp, fx.adminToken).map((token): HostileCase => ({
      family: 'audience confusion',
      endpoint: 'POST /token/introspection',
      request: post('/token/introspection', formHeaders, form({ token, client_id: fx.client.id })),
      expect: 'error',
    })),
  );

/** Another browser on a flow it did not open: the page, its state, its steps, the upstream's callback. */
export const flowHijackFamily: Family = (fx) => {
  const stranger = fc.constantFrom(
    { name: 'no cookie', cookies: () => '' },
    { name: 'forged binding', cookies: () => `cg_flow_${fx.flow.uid}=${'A'.repeat(43)}` },
    { name: 'other flow', cookies: fx.otherFlow.cookies },
    { name: 'signed-in other', cookies: (path: string) => fx.otherFlow.cookies(path).replace(new RegExp(`cg_flow_${fx.otherFlow.uid}`, 'g'), `cg_flow_${fx.flow.uid}`) },
  );
  return fc.oneof(
    stranger.map((browser): HostileCase => {
      const path = `/interaction/${fx.flow.uid}`;
      return { family: 'flow hijack', endpoint: 'GET /interaction/:uid', request: get(path, { cookie: browser.cookies(path) }), expect: 'html' };
    }),
    stranger.map((browser): HostileCase => {
      const path = `/interaction/${fx.flow.uid}/state`;
      return { family: 'flow hijack', endpoint: 'GET /interaction/:uid/state', request: get(path, { cookie: browser.cookies(path), accept: 'application/json' }), expect: 'oauth-json' };
    }),
    fc.tuple(stranger, fc.constantFrom('identity', 'services', 'decision', 'connect'), fc.constantFrom(fx.flow.csrf, fx.otherFlow.csrf)).map(([browser, step, csrf]): HostileCase => {
      const path = `/interaction/${fx.flow.uid}/${step}`;
      const body = { identity: { userId: 'mallory' }, services: { upstreams: [] }, decision: { decision: 'approve' }, connect: { upstream: fx.upstreams.oauth } }[step];
      return { family: 'flow hijack', endpoint: `POST /interaction/:uid/${step}`, request: post(path, { ...jsonHeaders, cookie: browser.cookies(path), 'x-csrf-token': csrf }, JSON.stringify(body)), expect: 'oauth-json' };
    }),
    fc.tuple(stranger, fc.constantFrom('code=stolen', 'error=access_denied', 'code=x&iss=https%3A%2F%2Fattacker.example')).map(([browser, extra]): HostileCase => {
      const path = `/oauth/upstream/callback?state=${encodeURIComponent(fx.upstreamState)}&${extra}`;
      return { family: 'flow hijack', endpoint: 'GET /oauth/upstream/callback', request: get(path, { cookie: browser.cookies(path) }), expect: 'html' };
    }),
    fc.stringMatching(/^[A-Za-z0-9_-]{10,64}$/).map((uid): HostileCase => ({ family: 'flow hijack', endpoint: 'GET /interaction/:uid', request: get(`/interaction/${uid}`, { cookie: fx.flow.cookies(`/interaction/${uid}`) }), expect: 'html' })),
    // The provider's resume of an interaction, from a browser that did not start it, or of one that does not exist.
    fc.tuple(stranger, fc.oneof(fc.constant(fx.flow.uid), fc.stringMatching(/^[A-Za-z0-9_-]{21,43}$/))).map(([browser, uid]): HostileCase => {
      const path = `/auth/${uid}`;
      return { family: 'flow hijack', endpoint: 'GET /auth/:uid', request: get(path, { cookie: browser.cookies(path) }), expect: 'authorize', check: (response) => redirectProblem(fx, response.status, response.headers.location) };
    }),
    fc.constantFrom('/connect', '/connect?elicitationId=').map((path): HostileCase => ({
      family: 'flow hijack',
      endpoint: 'GET /connect',
      request: get(`${path}${path.endsWith('=') ? fx.foreignElicitation : `?elicitationId=${fx.foreignElicitation}`}`, { cookie: fx.session.cookies('/connect') }),
      expect: 'html',
    })),
  );
};

/** POSTs of the consent steps and My connections without the right CSRF token, or from another origin. */
export const csrfFamily: Family = (fx) => {
  const wrongTokens = fc.oneof(
    // (Surrounding spaces are no variant: HTTP strips them from header values.)
    fc.constantFrom(null, '', ' ', fx.otherFlow.csrf, fx.session.csrf, fx.flow.csrf.toUpperCase(), fx.flow.csrf.slice(1), `${fx.flow.csrf}=`, `${fx.flow.csrf}${fx.flow.csrf}`, 'null', 'undefined', 'x'.repeat(4096)),
    fc.stringMatching(/^[A-Za-z0-9_-]{43}$/),
  );
  const loopbackTwin = fx.base.includes('//localhost') ? fx.base.replace('//localhost', '//127.0.0.1') : fx.base.replace('//127.0.0.1', '//localhost');
  const origins = fc.constantFrom(undefined, 'https://attacker.example', 'null', `${fx.base}.attacker.example`, loopbackTwin, fx.base.replace('http:', 'https:'));
  return fc.oneof(
    fc.tuple(fc.constantFrom('identity', 'services', 'decision', 'connect'), wrongTokens).map(([step, token]): HostileCase => {
      const path = `/interaction/${fx.flow.uid}/${step}`;
      const body = { identity: { userId: 'mallory' }, services: { upstreams: [fx.upstreams.none] }, decision: { decision: 'approve' }, connect: { upstream: fx.upstreams.oauth } }[step];
      const headers: Record<string, string> = { ...jsonHeaders, cookie: fx.flow.cookies(path) };
      if (token !== null) headers['x-csrf-token'] = token;
      return { family: 'CSRF', endpoint: `POST /interaction/:uid/${step}`, request: post(path, headers, JSON.stringify(body)), expect: 'oauth-json' };
    }),
    fc.tuple(fc.constantFrom('identity', 'decision'), origins.filter((origin) => origin !== undefined)).map(([step, origin]): HostileCase => {
      const path = `/interaction/${fx.flow.uid}/${step}`;
      return {
        family: 'CSRF',
        endpoint: `POST /interaction/:uid/${step}`,
        request: post(path, { ...jsonHeaders, cookie: fx.flow.cookies(path), 'x-csrf-token': fx.flow.csrf, origin: origin! }, JSON.stringify(step === 'identity' ? { userId: 'mallory' } : { decision: 'approve' })),
        expect: 'oauth-json',
      };
    }),
    fc
      .tuple(
        fc.constantFrom(
          { endpoint: 'POST /connections/api/clients/:id/revoke', path: `/connections/api/clients/${encodeURIComponent(fx.client.id)}/revoke` },
          { endpoint: 'POST /connections/api/upstreams/:name/disconnect', path: `/connections/api/upstreams/${fx.upstreams.oauth}/disconnect` },
          { endpoint: 'POST /connections/api/upstreams/:name/connect', path: `/connections/api/upstreams/${fx.upstreams.oauth}/connect` },
          { endpoint: 'POST /connections/api/upstreams/:name/reconnect', path: `/connections/api/upstreams/${fx.upstreams.oauth}/reconnect` },
        ),
        fc.oneof(wrongTokens.map((token) => ({ token, origin: undefined as string | undefined })), origins.map((origin) => ({ token: fx.session.csrf as string | null, origin }))),
      )
      .filter(([, attempt]) => attempt.token !== fx.session.csrf || attempt.origin !== undefined)
      .map(([target, attempt]): HostileCase => {
        const headers: Record<string, string> = { ...jsonHeaders, cookie: fx.session.cookies(target.path) };
        if (attempt.token !== null) headers['x-csrf-token'] = attempt.token;
        if (attempt.origin) headers.origin = attempt.origin;
        return { family: 'CSRF', endpoint: target.endpoint, request: post(target.path, headers, '{}'), expect: 'oauth-json' };
      }),
    // Without the session cookie at all.
    fc.constantFrom('/connections/api', `/connections/api/upstreams/${fx.upstreams.oauth}/connect`).map((path): HostileCase => ({
      family: 'CSRF',
      endpoint: path === '/connections/api' ? 'GET /connections/api' : 'POST /connections/api/upstreams/:name/connect',
      request: path === '/connections/api' ? get(path) : post(path, { ...jsonHeaders, 'x-csrf-token': fx.session.csrf }, '{}'),
      expect: 'oauth-json',
    })),
  );
};

/** Spoofed `Host`, `X-Forwarded-*`, `Forwarded` and `Origin`: no metadata, redirect or link may follow them. */
export const headerSpoofingFamily: Family = (fx) => {
  const spoofs = fc.constantFrom<Record<string, string>>(
    { host: 'attacker.example' },
    { host: `attacker.example:${fx.host.split(':')[1]}` },
    { 'x-forwarded-host': 'attacker.example', 'x-forwarded-proto': 'https' },
    { 'x-forwarded-for': '10.0.0.1, 127.0.0.1' },
    { forwarded: 'for=10.0.0.1;host=attacker.example;proto=https' },
    { 'x-real-ip': '10.0.0.1', 'x-forwarded-for': '::1' },
    { origin: 'https://attacker.example' },
    { 'x-original-url': '/admin/audit', 'x-rewrite-url': '/admin/audit' },
    { 'x-forwarded-prefix': '/attacker', 'x-forwarded-port': '1' },
    { host: `${fx.host}@attacker.example` },
  );
  // A refusal may name the forged value; an answer that serves the request must not carry it.
  const leaksAttacker = (response: { status: number; body: string; headers: Record<string, string | string[] | undefined> }) =>
    response.status < 400 && (/attacker\.example/.test(response.body) || /attacker\.example/.test(String(response.headers.location ?? ''))) ? 'the spoofed host reached the answer' : undefined;
  const publicGets = ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server', '/.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource/mcp', `/.well-known/oauth-protected-resource/mcp/${fx.upstreams.none}`, '/jwks', '/healthz', '/', '/oauth/client-metadata.json', '/connections'];
  return fc.oneof(
    fc.tuple(fc.constantFrom(...publicGets), spoofs).map(([path, headers]): HostileCase => ({
      family: 'header spoofing',
      endpoint: `GET ${path}`,
      request: get(path, headers),
      expect: 'harmless',
      check: leaksAttacker,
    })),
    fc.tuple(spoofs, validId).map(([headers, id]): HostileCase => {
      const host = Boolean(headers.host) || Boolean(headers.origin);
      return {
        family: 'header spoofing',
        endpoint: 'POST /mcp',
        request: post('/mcp', { ...mcpHeaders(fx.tokens.mcp), 'mcp-protocol-version': '2026-07-28', ...headers }, JSON.stringify({ jsonrpc: '2.0', id, method: 'no/such/method', params: { _meta: modernMeta } })),
        // The DNS-rebinding guard answers a foreign Host or Origin before reading the body (id null); the rest reach the method lookup.
        expect: 'jsonrpc',
        ...(host ? {} : { rpcId: id }),
      };
    }),
    spoofs.map((headers): HostileCase => {
      const query = new URLSearchParams({ response_type: 'code', client_id: fx.client.id, redirect_uri: 'https://attacker.example/cb', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' });
      return { family: 'header spoofing', endpoint: 'GET /auth', request: get(`/auth?${query}`, headers), expect: 'authorize', check: (response) => redirectProblem(fx, response.status, response.headers.location) };
    }),
    fc.tuple(fc.constantFrom('/admin/audit', '/admin/users', '/metrics'), spoofs).map(([path, headers]): HostileCase => ({ family: 'header spoofing', endpoint: `GET ${path}`, request: get(path, headers), expect: 'oauth-json' })),
    spoofs.map((headers): HostileCase => {
      const path = `/interaction/${fx.flow.uid}/decision`;
      return {
        family: 'header spoofing',
        endpoint: 'POST /interaction/:uid/decision',
        // Right cookie and CSRF token, but an origin the spoof claims: a foreign Origin is refused; a spoofed host alone changes nothing, so no token is sent.
        request: post(path, { ...jsonHeaders, cookie: fx.flow.cookies(path), ...headers }, '{"decision":"approve"}'),
        expect: 'oauth-json',
      };
    }),
  );
};

/** `..`, encoded, double-encoded and overlong separators toward files, admin routes and other endpoints. */
export const pathTraversalFamily: Family = (fx) => {
  const climbs = fc.constantFrom('..', '%2e%2e', '%2E%2E', '.%2e', '%252e%252e', '%c0%ae%c0%ae', '..%00', '..;', '..\\', '%2e%2e%5c');
  const seps = fc.constantFrom('/', '%2f', '%2F', '%252f', '\\', '%5c', '//');
  const targets = fc.constantFrom('package.json', 'etc/passwd', 'admin/audit', 'server/config.ts', '.env', 'mcp', `mcp/${fx.upstreams.none}`, 'healthz');
  const prefixes = fc.constantFrom('/assets/', '/interaction/', `/interaction/${fx.flow.uid}/`, '/mcp/', `/mcp/${fx.upstreams.none}/`, '/connections/api/clients/', '/admin/users/', '/.well-known/', '/oauth/', '/connect/', '/jwks/', '/static/');
  return fc.tuple(prefixes, fc.array(fc.tuple(climbs, seps), { minLength: 1, maxLength: 5 }), targets, fc.constantFrom('', '.js', '%00.js', '?x=1', '#frag'), fc.constantFrom('GET', 'POST')).map(([prefix, steps, target, suffix, method]): HostileCase => {
    const path = `${prefix}${steps.map(([climb, sep]) => `${climb}${sep}`).join('')}${target}${suffix}`.replace(/\\/g, '%5C').replace(/#.*$/, '');
    const mcp = prefix.startsWith('/mcp/');
    const headers: Record<string, string> = mcp ? mcpHeaders(fx.tokens.mcp) : { accept: 'text/html,application/json', cookie: fx.session.cookies('/') };
    return {
      family: 'path traversal',
      endpoint: `${method} ${prefix.replace(fx.flow.uid, ':uid').replace(`/${fx.upstreams.none}/`, '/<upstream>/')}…`,
      request: method === 'POST' ? post(path, { ...headers, 'content-type': 'application/json' }, '{}') : get(path, headers),
      expect: 'error',
      check: (response) => (/"devDependencies"|root:x:0|GATEWAY_|"entries"\s*:/.test(response.body) ? 'a file or admin data leaked' : undefined),
    };
  });
};

/** Request heads and query strings far past any normal size. */
export const hugeHeadersFamily: Family = (fx) => {
  const paths = fc.constantFrom(
    { path: '/auth', endpoint: 'GET /auth', expect: 'authorize' as const },
    { path: '/healthz', endpoint: 'GET /healthz', expect: 'harmless' as const },
    // The browser the flow belongs to: a long query it does not read changes nothing.
    { path: `/interaction/${fx.flow.uid}/state`, endpoint: 'GET /interaction/:uid/state', expect: 'harmless' as const },
    { path: '/admin/audit', endpoint: 'GET /admin/audit', expect: 'oauth-json' as const },
    { path: '/connect', endpoint: 'GET /connect', expect: 'html' as const },
    { path: '/oauth/upstream/callback', endpoint: 'GET /oauth/upstream/callback', expect: 'html' as const },
    { path: '/.well-known/oauth-authorization-server', endpoint: 'GET /.well-known/oauth-authorization-server', expect: 'harmless' as const },
  );
  return fc.oneof(
    fc.tuple(paths, fc.integer({ min: 2_000, max: 200_000 }), fc.constantFrom('state', 'client_id', 'elicitationId', 'user', 'x', 'redirect_uri')).map(([target, size, name]): HostileCase => ({
      family: 'huge headers/query',
      endpoint: target.endpoint,
      request: get(`${target.path}?${name}=${'A'.repeat(size)}`, target.path.startsWith('/interaction') ? { cookie: fx.flow.cookies(target.path) } : {}),
      expect: target.expect,
    })),
    fc.tuple(paths, fc.integer({ min: 1, max: 2_000 })).map(([target, repeats]): HostileCase => ({
      family: 'huge headers/query',
      endpoint: target.endpoint,
      request: get(`${target.path}?${Array.from({ length: repeats }, (_, i) => `p${i}=${i}`).join('&')}`),
      expect: target.expect,
    })),
    fc.tuple(fc.constantFrom('/mcp', '/token', '/healthz', '/admin/audit'), fc.integer({ min: 8_000, max: 64_000 }), fc.constantFrom('authorization', 'cookie', 'x-filler', 'mcp-session-id', 'user-agent')).map(([path, size, name]): HostileCase => ({
      family: 'huge headers/query',
      endpoint: `${path === '/token' ? 'POST' : 'GET'} ${path}`,
      request: path === '/token' ? post(path, { ...formHeaders, [name]: `Bearer ${'A'.repeat(size)}` }, 'grant_type=refresh_token&refresh_token=x') : get(path, { [name]: name === 'authorization' ? `Bearer ${'A'.repeat(size)}` : 'A'.repeat(size) }),
      expect: path === '/healthz' ? 'harmless' : path === '/mcp' ? 'bearer' : 'oauth-json',
    })),
  );
};

/** NUL, control characters, broken UTF-8 and bidi overrides in every kind of parameter. */
export const unicodeFamily: Family = (fx) =>
  fc.oneof(
    fc.tuple(fc.constantFrom('client_id', 'state', 'scope', 'resource', 'redirect_uri', 'code_challenge', 'response_type', 'prompt'), encodedValue).map(([name, value]): HostileCase => {
      const query: Record<string, string> = { response_type: 'code', client_id: encodeURIComponent(fx.client.id), redirect_uri: encodeURIComponent(fx.client.redirectUri), scope: 'mcp%3Atools', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', state: 'st' };
      query[name] = value;
      return {
        family: 'unicode/NUL',
        endpoint: 'GET /auth',
        request: get(`/auth?${Object.entries(query).map(([k, v]) => `${k}=${v}`).join('&')}`),
        expect: 'authorize',
        // A value the provider takes as it is (an odd `state`) is an accepted request: it opens a flow.
        store: opensFlow(fx),
        check: (response) => redirectProblem(fx, response.status, response.headers.location),
      };
    }),
    fc.tuple(fc.constantFrom('code', 'client_id', 'code_verifier', 'redirect_uri', 'grant_type', 'refresh_token'), encodedValue).map(([name, value]): HostileCase => {
      const fields: Record<string, string> = { grant_type: 'authorization_code', code: 'x', code_verifier: 'A'.repeat(43), redirect_uri: encodeURIComponent(fx.client.redirectUri), client_id: encodeURIComponent(fx.client.id) };
      fields[name] = value;
      return { family: 'unicode/NUL', endpoint: 'POST /token', request: post('/token', formHeaders, Object.entries(fields).map(([k, v]) => `${k}=${v}`).join('&')), expect: 'oauth-json' };
    }),
    encodedValue.map((value): HostileCase => ({ family: 'unicode/NUL', endpoint: 'POST /token/revocation', request: post('/token/revocation', formHeaders, `token=${value}&client_id=${encodeURIComponent(fx.client.id)}`), expect: 'harmless' })),
    encodedValue.map((value): HostileCase => ({ family: 'unicode/NUL', endpoint: 'GET /connect', request: get(`/connect?elicitationId=${value}`, { cookie: fx.session.cookies('/connect') }), expect: 'html' })),
    encodedValue.map((value): HostileCase => ({ family: 'unicode/NUL', endpoint: 'GET /oauth/upstream/callback', request: get(`/oauth/upstream/callback?state=${value}&code=${value}`), expect: 'html' })),
    encodedValue.map((value): HostileCase => ({ family: 'unicode/NUL', endpoint: 'GET /interaction/:uid', request: get(`/interaction/${value}`), expect: 'error' })),
    fc.tuple(fc.constantFrom('user', 'client', 'upstream', 'kind', 'since', 'cursor', 'limit'), encodedValue).map(([name, value]): HostileCase => ({
      family: 'unicode/NUL',
      endpoint: 'GET /admin/audit',
      request: get(`/admin/audit?${name}=${value}`, { authorization: `Bearer ${fx.adminToken}` }),
      // The admin may search for any text; odd filters find nothing or are refused.
      expect: 'harmless',
    })),
    encodedValue.map((value): HostileCase => ({ family: 'unicode/NUL', endpoint: 'GET /admin/users/:user', request: get(`/admin/users/${value}`, { authorization: `Bearer ${fx.adminToken}` }), expect: 'harmless' })),
    controlText.map((userId): HostileCase => {
      const path = `/interaction/${fx.flow.uid}/identity`;
      return { family: 'unicode/NUL', endpoint: 'POST /interaction/:uid/identity', request: post(path, { ...jsonHeaders, cookie: fx.flow.cookies(path), 'x-csrf-token': fx.flow.csrf }, JSON.stringify({ userId })), expect: 'oauth-json' };
    }),
    fc.tuple(nastyText, fc.constantFrom('/mcp', `/mcp/${fx.upstreams.none}`)).map(([text, path]): HostileCase => ({
      family: 'unicode/NUL',
      endpoint: path === '/mcp' ? 'POST /mcp' : 'POST /mcp/<upstream>',
      request: post(path, { ...mcpHeaders(path === '/mcp' ? fx.tokens.mcp : fx.tokens.none), 'mcp-protocol-version': '2026-07-28' }, JSON.stringify({ jsonrpc: '2.0', id: text, method: `tools/${text}`, params: { _meta: modernMeta } })),
      expect: 'jsonrpc',
      rpcId: text,
    })),
    // A name with control or bidirectional formatting characters is refused; other odd text is a name like any.
    fc.oneof(nastyText, fc.constantFrom('\u202eevil.exe', 'Official\u2066 App\u2069', '\u061cname', 'ok\u0085', 'x\u200fy')).map((name): HostileCase => {
      const request = post('/reg', jsonHeaders, JSON.stringify({ client_name: name, redirect_uris: [`http://127.0.0.1:9/${encodeURIComponent(name)}`], token_endpoint_auth_method: 'none' }));
      return /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/.test(name)
        ? { family: 'unicode/NUL', endpoint: 'POST /reg', request, expect: 'oauth-json' }
        : { family: 'unicode/NUL', endpoint: 'POST /reg', request, expect: 'harmless', store: (response) => (response.status === 201 ? 'accepted' : 'unchanged') };
    }),
  );

/**
 * Client names meant to inject HTML or Markdown, registered (a name is the client's to choose) and
 * then shown: the registration echoes them exactly; no page the gateway renders carries them unescaped.
 */
export const clientNameInjectionFamily: Family = () =>
  fc.tuple(injectionNames, fc.constantFrom('client_name', 'client_uri', 'logo_uri', 'policy_uri', 'tos_uri')).map(([name, field]): HostileCase => {
    const metadata: Record<string, unknown> = { client_name: 'Injection test', redirect_uris: ['http://127.0.0.1:9/callback'], token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] };
    metadata[field] = name;
    return {
      family: 'Markdown/HTML injection',
      endpoint: 'POST /reg',
      request: post('/reg', jsonHeaders, JSON.stringify(metadata)),
      expect: 'harmless',
      store: (response) => (response.status === 201 ? 'accepted' : 'unchanged'),
      check: (response) => {
        if (response.status === 201) {
          const body = JSON.parse(response.body) as Record<string, unknown>;
          return body[field] === name ? undefined : `${field} came back as ${JSON.stringify(body[field])}`;
        }
        return response.status === 400 && /"error"/.test(response.body) ? undefined : `registration answered ${response.status}`;
      },
    };
  });

/** PKCE abuse at the authorization endpoint (no, plain, malformed challenges) and at the token endpoint (wrong verifiers for a live code). */
export const pkceAbuseFamily: Family = (fx) => {
  const challenges = fc.oneof(
    fc.constantFrom<[string | null, string | null]>([null, null], [null, 'S256'], ['E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', null], ['E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', 'plain'], ['E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', 'S512'], ['E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', 's256'], ['', 'S256'], ['short', 'S256'], ['A'.repeat(129), 'S256']),
    fc.stringMatching(/^[^A-Za-z0-9\-._~]{43,60}$/).map((challenge): [string, string] => [challenge, 'S256']),
    fc.integer({ min: 1, max: 42 }).map((length): [string, string] => ['A'.repeat(length), 'S256']),
  );
  const verifiers = fc.oneof(
    fc.constantFrom<string | null>(null, '', fx.freshCode.verifier.slice(0, 42), `${fx.freshCode.verifier}A`, fx.freshCode.verifier.toUpperCase(), 'A'.repeat(43), 'A'.repeat(129), fx.usedCodes[0]?.verifier ?? 'x'),
    fc.stringMatching(/^[A-Za-z0-9\-._~]{43,128}$/).filter((verifier) => verifier !== fx.freshCode.verifier),
  );
  return fc.oneof(
    challenges.map(([challenge, method]): HostileCase => {
      const query = new URLSearchParams({ response_type: 'code', client_id: fx.client.id, redirect_uri: fx.client.redirectUri, scope: 'mcp:tools', state: 'pkce' });
      if (challenge !== null) query.set('code_challenge', challenge);
      if (method !== null) query.set('code_challenge_method', method);
      return {
        family: 'PKCE abuse',
        endpoint: 'GET /auth',
        request: get(`/auth?${query}`),
        expect: 'authorize',
        check: (response) => {
          const location = new URL(String(response.headers.location ?? '/'), fx.base);
          if (response.status >= 300 && response.status < 400 && !location.searchParams.get('error')) return `accepted: redirected to ${location.pathname}`;
          return redirectProblem(fx, response.status, response.headers.location);
        },
      };
    }),
    verifiers.map((verifier): HostileCase => ({
      family: 'PKCE abuse',
      endpoint: 'POST /token',
      request: post('/token', formHeaders, form({ grant_type: 'authorization_code', code: fx.freshCode.code, code_verifier: verifier ?? undefined, redirect_uri: fx.freshCode.redirectUri, client_id: fx.freshCode.clientId, resource: fx.freshCode.resource })),
      expect: 'oauth-json',
    })),
  );
};

/** Bearer tokens that are no token: malformed headers, other schemes, unknown, truncated or padded values. */
export const badBearerFamily: Family = (fx) => {
  const values = fc.oneof(
    fc.constantFrom('', 'Bearer', 'Bearer ', 'bearer', 'Basic dXNlcjpwYXNz', 'Bearer  ', `Bearer ${fx.tokens.mcp} extra`, `Bearer ${fx.tokens.mcp.slice(0, -1)}`, `Bearer ${fx.tokens.mcp}x`, `Bearer ${fx.tokens.mcp.toUpperCase()}`, `Token ${fx.tokens.mcp}`, `Bearer "${fx.tokens.mcp}"`, 'Bearer null', 'Bearer undefined', 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.', `Bearer ${fx.adminToken}`, `Bearer ${fx.freshCode.code}`, `DPoP ${fx.tokens.mcp}`, 'Bearer ../../etc/passwd', 'Bearer ====', `Bearer ${'A'.repeat(5000)}`),
    fc.stringMatching(/^[A-Za-z0-9\-._~+/]{1,200}=*$/).map((token) => `Bearer ${token}`),
    fc.string({ maxLength: 40 }).filter((text) => /^[\x20-\x7e]*$/.test(text)).map((text) => `Bearer ${text}`),
  );
  const notAdmin = values.filter((value) => value !== `Bearer ${fx.adminToken}`);
  return fc.oneof(
    fc.tuple(fc.constantFrom('/mcp', `/mcp/${fx.upstreams.none}`, `/mcp/${fx.upstreams.oauth}`), values, fc.constantFrom('POST', 'GET', 'DELETE')).map(([path, authorization, method]): HostileCase => {
      const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
      if (authorization) headers.authorization = authorization;
      return {
        family: 'bad bearer tokens',
        endpoint: `${method} ${path === '/mcp' ? '/mcp' : '/mcp/<upstream>'}`,
        request: method === 'POST' ? post(path, headers, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' })) : { method, path, headers },
        expect: 'bearer',
      };
    }),
    fc.tuple(fc.constantFrom('/admin/audit', '/admin/clients', '/admin/flows/stuck', '/metrics'), notAdmin).map(([path, authorization]): HostileCase => ({
      family: 'bad bearer tokens',
      endpoint: `GET ${path}`,
      request: get(path, authorization ? { authorization } : {}),
      expect: 'oauth-json',
    })),
    // The registration management endpoint (RFC 7592) with no or a wrong registration access token.
    fc.tuple(fc.constantFrom('GET', 'PUT', 'DELETE'), fc.constantFrom(fx.client.id, 'no-such-client'), notAdmin).map(([method, clientId, authorization]): HostileCase => ({
      family: 'bad bearer tokens',
      endpoint: `${method} /reg/:clientId`,
      request: { method, path: `/reg/${encodeURIComponent(clientId)}`, headers: { ...jsonHeaders, ...(authorization ? { authorization } : {}) }, ...(method === 'PUT' ? { body: JSON.stringify({ client_id: clientId, redirect_uris: ['https://attacker.example/cb'] }) } : {}) },
      expect: 'oauth-json',
    })),
    fc.tuple(fc.constantFrom('/admin/clients/x/revoke', '/admin/users/alice/revoke'), notAdmin).map(([path, authorization]): HostileCase => ({
      family: 'bad bearer tokens',
      endpoint: `POST ${path.replace(/\/(x|alice)\//, '/:id/')}`,
      request: post(path, { ...jsonHeaders, ...(authorization ? { authorization } : {}) }, '{}'),
      expect: 'oauth-json',
    })),
  );
};

/**
 * Cases that once found a fault, run on every seed: a body nested thousands of levels deep on
 * `/mcp` (500 from a stack overflow), a path under the OAuth server with no route (a bare text
 * 404), a `Host` carrying `@` (echoed into the discovery document's endpoint URLs), client names
 * with control or bidirectional formatting characters (registered), a NUL in admin filters and
 * ids (a 500 on PostgreSQL), and a request needing a session (its error without the request's id).
 */
export const pinnedCases = (fx: Fixtures): HostileCase[] => [
  {
    family: 'malformed/oversized JSON',
    endpoint: 'POST /mcp',
    request: post('/mcp', mcpHeaders(fx.tokens.mcp), `${'['.repeat(5000)}${']'.repeat(5000)}`),
    expect: 'jsonrpc',
  },
  {
    family: 'malformed/oversized JSON',
    endpoint: 'POST /mcp/<upstream>',
    request: post(`/mcp/${fx.upstreams.none}`, mcpHeaders(fx.tokens.none), JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: JSON.parse(`${'{"a":'.repeat(3000)}1${'}'.repeat(3000)}`) as unknown })),
    expect: 'jsonrpc',
  },
  { family: 'audience confusion', endpoint: 'POST /token/introspection', request: post('/token/introspection', formHeaders, form({ token: fx.tokens.mcp, client_id: fx.client.id })), expect: 'oauth-json' },
  { family: 'path traversal', endpoint: 'GET /jwks/…', request: get('/jwks/..%2f..%2fpackage.json'), expect: 'oauth-json' },
  ...['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server'].map((path): HostileCase => ({
    family: 'header spoofing',
    endpoint: `GET ${path}`,
    request: get(path, { host: `${fx.host}@attacker.example` }),
    expect: 'oauth-json',
  })),
  {
    family: 'header spoofing',
    endpoint: 'POST /reg',
    request: post('/reg', { ...jsonHeaders, host: 'attacker.example' }, JSON.stringify({ client_name: 'x', redirect_uris: ['http://127.0.0.1:9/cb'], token_endpoint_auth_method: 'none' })),
    expect: 'oauth-json',
  },
  // Client names that would print as another (bidirectional override) or drive a terminal (escapes, NUL) were registered.
  ...['\u202eexe.drowssap', 'Admin\u001b[2J\u001b[HConsole', 'nul\u0000name'].map((name): HostileCase => ({
    family: 'unicode/NUL',
    endpoint: 'POST /reg',
    request: post('/reg', jsonHeaders, JSON.stringify({ client_name: name, redirect_uris: ['http://127.0.0.1:9/callback'], token_endpoint_auth_method: 'none' })),
    expect: 'oauth-json',
  })),
  // A NUL in an admin filter or a user or client id reached PostgreSQL, which cannot hold one (a 500 there).
  ...['/admin/audit?user=a%00b', '/admin/audit?client=%00', '/admin/users/a%00b'].map((path): HostileCase => ({
    family: 'unicode/NUL',
    endpoint: `GET ${path.replace(/\?.*$/, '').replace('/a%00b', '/:user')}`,
    request: get(path, { authorization: `Bearer ${fx.adminToken}` }),
    expect: 'oauth-json',
  })),
  {
    family: 'unicode/NUL',
    endpoint: 'POST /admin/clients/:id/revoke',
    request: post('/admin/clients/a%00b/revoke', { ...jsonHeaders, authorization: `Bearer ${fx.adminToken}` }, '{}'),
    expect: 'oauth-json',
  },
  {
    family: 'unicode/NUL',
    endpoint: 'POST /connections/api/clients/:id/revoke',
    request: post('/connections/api/clients/a%00b/revoke', { ...jsonHeaders, cookie: fx.session.cookies('/connections/api/clients/a%00b/revoke'), 'x-csrf-token': fx.session.csrf }, '{}'),
    expect: 'oauth-json',
  },
  {
    family: 'JSON-RPC garbage',
    endpoint: 'POST /mcp',
    request: post('/mcp', mcpHeaders(fx.tokens.mcp), JSON.stringify({ jsonrpc: '2.0', id: 'needs-a-session', method: 'tools/list' })),
    expect: 'jsonrpc',
    rpcId: 'needs-a-session',
  },
  {
    family: 'JSON-RPC garbage',
    endpoint: 'POST /mcp',
    request: post('/mcp', { ...mcpHeaders(fx.tokens.mcp), 'mcp-session-id': 'no-such-session' }, JSON.stringify({ jsonrpc: '2.0', id: 41, method: 'tools/list' })),
    expect: 'jsonrpc',
    rpcId: 41,
  },
];

/**
 * Every family with how many cases it contributes. `early` families spend codes (valid 60 s) and
 * refresh tokens the setup prepared, so they run first.
 */
export const corpus: { name: string; family: Family; runs: number; early?: boolean }[] = [
  { name: 'PKCE abuse', family: pkceAbuseFamily, runs: 60, early: true },
  { name: 'code replay', family: codeReplayFamily, runs: 40, early: true },
  { name: 'refresh-token reuse', family: refreshReuseFamily, runs: 30, early: true },
  { name: 'malformed/oversized JSON', family: malformedJsonFamily, runs: 90 },
  { name: 'wrong content types', family: wrongContentTypeFamily, runs: 60 },
  { name: 'JSON-RPC garbage', family: jsonRpcGarbageFamily, runs: 120 },
  { name: 'open redirect', family: openRedirectFamily, runs: 70 },
  { name: 'audience confusion', family: audienceConfusionFamily, runs: 50 },
  { name: 'flow hijack', family: flowHijackFamily, runs: 60 },
  { name: 'CSRF', family: csrfFamily, runs: 80 },
  { name: 'header spoofing', family: headerSpoofingFamily, runs: 70 },
  { name: 'path traversal', family: pathTraversalFamily, runs: 80 },
  { name: 'huge headers/query', family: hugeHeadersFamily, runs: 50 },
  { name: 'unicode/NUL', family: unicodeFamily, runs: 110 },
  { name: 'Markdown/HTML injection', family: clientNameInjectionFamily, runs: 30 },
  { name: 'bad bearer tokens', family: badBearerFamily, runs: 80 },
];

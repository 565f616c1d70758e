/**
 * `npm run upstream-client -- <MCP URL>`: connects one MCP server the way the gateway connects an
 * upstream, with the gateway's own code (`activities/upstream-oauth/`: discovery, registration or a
 * configured client, authorization code with PKCE and `resource`, the issuer checks, refresh,
 * step-up, DPoP; `server/mcp/upstream-connections.ts`: the MCP client with the user's token,
 * presented by `server/upstream-dpop.ts`), follows
 * the authorization redirects headlessly instead of a browser, then lists the tools and calls the
 * first one. Prints one line per step; exits 1 on failure.
 *
 * For the conformance suite's client scenarios (`conformance client --suite auth --command …`):
 * `MCP_CONFORMANCE_CONTEXT` may carry a pre-registered `client_id` (and `client_secret`).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

import { createActivities } from '../activities/index.js';
import type { UpstreamSettings } from '../activities/upstream-oauth/index.js';
import { TokenCipher } from '../server/crypto/token-cipher.js';
import { UpstreamConnections, UpstreamEras } from '../server/mcp/upstream-connections.js';
import type { McpUpstream } from '../server/mcp/types.js';
import { SqliteStore } from '../server/store/sqlite-store.js';
import { upstreamTokenPresentation } from '../server/upstream-dpop.js';

const userId = 'upstream-client';
const name = 'upstream';
/** Never served: the redirects are followed until they reach it, and the code is read from the URL. */
const redirectUri = 'http://127.0.0.1:9/oauth/upstream/callback';
const maxRedirects = 20;
const maxStepUps = 2;

interface ConformanceContext {
  client_id?: string;
  client_secret?: string;
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/**
 * Follows an authorization request's redirects without a browser until they reach `redirectUri`,
 * keeping each origin's cookies as a browser would (an authorization server's interaction needs them).
 */
async function followAuthorization(start: string): Promise<URL> {
  const jars = new Map<string, Map<string, string>>();
  let url = new URL(start);
  for (let hop = 0; hop < maxRedirects; hop += 1) {
    if (url.href.startsWith(redirectUri)) return url;
    const jar = jars.get(url.origin) ?? new Map<string, string>();
    jars.set(url.origin, jar);
    const response = await fetch(url, { redirect: 'manual', headers: { cookie: [...jar].map(([key, value]) => `${key}=${value}`).join('; ') } });
    for (const cookie of response.headers.getSetCookie()) {
      const [pair = ''] = cookie.split(';');
      const at = pair.indexOf('=');
      if (at > 0) jar.set(pair.slice(0, at).trim(), pair.slice(at + 1).trim());
    }
    await response.body?.cancel();
    const location = response.headers.get('location');
    if (!location) throw new Error(`the authorization stopped at ${url.origin}${url.pathname} with HTTP ${response.status}`);
    url = new URL(location, url);
  }
  throw new Error(`the authorization did not come back after ${maxRedirects} redirects`);
}

async function main(): Promise<void> {
  const mcpUrl = process.argv[2];
  if (!mcpUrl) throw new Error('usage: npm run upstream-client -- <MCP server URL>');
  const context = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT ?? '{}') as ConformanceContext;
  const dir = await mkdtemp(path.join(tmpdir(), 'cg-upstream-client-'));
  const store = await SqliteStore.open(path.join(dir, 'gateway.sqlite'));
  const cipher = new TokenCipher(randomBytes(32));
  const upstream: UpstreamSettings = {
    name,
    mcpUrl,
    scopes: [],
    auth: {
      type: 'oauth',
      client: context.client_id
        ? { kind: 'static', clientId: context.client_id, ...(context.client_secret ? { clientSecret: context.client_secret, authMethod: 'client_secret_basic' as const } : { authMethod: 'none' as const }) }
        : { kind: 'dynamic' },
      resource: true,
    },
  };
  const activities = createActivities({ store, cipher, upstreams: [upstream], redirectUri });
  const presentation = upstreamTokenPresentation(cipher);

  /** One connect, as the connect link runs it: prepare, the user's browser, the callback, the exchange. */
  async function connect(): Promise<void> {
    const flowId = `connect-${Date.now()}`;
    const { authorizationRef } = await activities.prepareUpstreamAuthorization({ flowId, upstream: name, userId });
    const authorizationUrl = cipher.open((await store.getExchangeResult(authorizationRef))!, authorizationRef);
    say(`authorize: ${new URL(authorizationUrl).origin} scope=${new URL(authorizationUrl).searchParams.get('scope') ?? '(none)'}`);
    const callback = await followAuthorization(authorizationUrl);
    const error = callback.searchParams.get('error');
    if (error) throw new Error(`the authorization server answered ${error}`);
    const state = callback.searchParams.get('state') ?? '';
    const stateHash = createHash('sha256').update(state).digest('base64url');
    const completed = await store.completeUpstreamAuthorization(
      stateHash,
      {
        code: cipher.seal(callback.searchParams.get('code') ?? '', `upstream_authorizations:${stateHash}:code`),
        callback: cipher.seal(callback.searchParams.toString(), `upstream_authorizations:${stateHash}:callback`),
      },
      Math.floor(Date.now() / 1000),
    );
    if (!completed) throw new Error('the callback matches no pending authorization');
    const connection = await activities.exchangeUpstreamCode({ flowId, upstream: name, stateHash });
    const bound = (await store.getUpstreamTokens(userId, name))?.dpopKey !== undefined;
    say(`connected: scopes=${connection.scopes.join(' ') || '(none)'}${bound ? ' dpop' : ''}`);
  }

  const stepUps = new Map<string, number>();
  const target: McpUpstream = { name, displayName: 'Upstream', url: mcpUrl };
  const connections = new UpstreamConnections({
    clientInfo: { name: 'consent-gateway', version: '0.1.0' },
    log: { debug() {}, info() {}, warn: (message) => say(`warn: ${message}`), error: (message) => say(`error: ${message}`) },
    eras: new UpstreamEras(),
    capabilities: () => ({}),
    connectTimeoutMs: 30_000,
    async headers(_upstream, request): Promise<Record<string, string>> {
      const tokens = await store.getUpstreamTokens(userId, name);
      return tokens ? presentation.headers(tokens, mcpUrl, request) : {};
    },
    async unauthorized(_upstream, sent, retried, challenge) {
      const tokens = await store.getUpstreamTokens(userId, name);
      if (!tokens) return false;
      if (presentation.nonceRequired(tokens, mcpUrl, sent, challenge)) {
        say('dpop nonce');
        return !retried;
      }
      if (retried) return false;
      if (tokens.refreshToken) {
        await activities.refreshUpstreamToken({ userId, upstream: name, version: tokens.version, key: `refresh:${tokens.version}` });
        say('refreshed');
      } else {
        await connect();
      }
      return true;
    },
    async insufficientScope(_upstream, _sent, scopes) {
      const tokens = await store.getUpstreamTokens(userId, name);
      if (!tokens) return false;
      const wanted = [...new Set([...tokens.scopes, ...scopes])].sort();
      const key = wanted.join(' ');
      const asked = stepUps.get(key) ?? 0;
      if (asked >= maxStepUps) throw new Error(`the upstream still refuses after ${asked} authorizations of ${key}`);
      stepUps.set(key, asked + 1);
      say(`step-up: ${key}`);
      await activities.requireUpstreamScopes({ userId, upstream: name, scopes: wanted });
      await connect();
      return true;
    },
  });
  try {
    await connect();
    await connections.use(target, async (client) => {
      const { tools } = await client.listTools();
      say(`tools: ${tools.map((tool) => tool.name).join(' ') || '(none)'}`);
      const first = tools[0];
      if (first) {
        const result = await client.callTool({ name: first.name, arguments: {} });
        say(`called ${first.name}: ${result.isError ? 'error' : 'ok'}`);
      }
    });
  } finally {
    await connections.closeAll();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    const failure = error as { message?: string; type?: string };
    process.stderr.write(`upstream-client failed: ${failure.type ? `${failure.type}: ` : ''}${failure.message ?? String(error)}\n`);
    process.exit(1);
  },
);

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
 * `MCP_CONFORMANCE_CONTEXT` may carry a pre-registered `client_id` (and `client_secret`). With an
 * `idp_id_token` (and `idp_issuer`, `idp_client_id`) it connects the way the gateway's `enterprise`
 * kind does instead (`server/upstream-brokered/`): the ID token is kept as a signed-in user's, the
 * authorization server is found through the MCP URL's metadata, and every request's token is an
 * ID-JAG from the IdP (RFC 8693) traded at that server (RFC 7523).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

import { decodeJwt } from 'jose';

import { createActivities } from '../activities/index.js';
import type { UpstreamSettings } from '../activities/upstream-oauth/index.js';
import { createDiscovery } from '../activities/upstream-oauth/discovery.js';
import type { UpstreamConfig } from '../server/config.js';
import { TokenCipher } from '../server/crypto/token-cipher.js';
import { IdpTokens } from '../server/identity/idp-tokens.js';
import { OidcLogin } from '../server/identity/oidc-login.js';
import { PendingLogins } from '../server/identity/pending-logins.js';
import type { Logger } from '../server/log.js';
import type { McpCaller, McpUpstream } from '../server/mcp/types.js';
import { UpstreamConnections, UpstreamEras, type UpstreamConnectionsOptions } from '../server/mcp/upstream-connections.js';
import { SqliteStore } from '../server/store/sqlite-store.js';
import { brokeredTokens } from '../server/upstream-brokered/index.js';
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
  /** Enterprise-Managed Authorization: the user's ID token at the enterprise IdP, and the gateway's client there. */
  idp_id_token?: string;
  idp_issuer?: string;
  idp_client_id?: string;
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

/**
 * The `enterprise` kind's credentials for one user, by the gateway's own code: the context's ID
 * token is kept as that user's sign-in at the IdP (sealed, as at a real sign-in), the upstream's
 * authorization server is the one its protected resource metadata names (RFC 9728), and each
 * request's token comes from {@link brokeredTokens}: an ID-JAG asked of the IdP, presented at the
 * authorization server's token endpoint with the pre-registered client.
 */
async function enterpriseAccess(
  context: ConformanceContext,
  mcpUrl: string,
  target: McpUpstream,
  deps: { store: SqliteStore; cipher: TokenCipher; log: Logger },
): Promise<Pick<UpstreamConnectionsOptions, 'headers' | 'unauthorized'>> {
  const idToken = context.idp_id_token ?? '';
  if (!context.idp_issuer || !context.idp_client_id || !context.client_id) throw new Error('an idp_id_token needs idp_issuer, idp_client_id and client_id beside it');
  const as = await createDiscovery()({ name, mcpUrl, scopes: [], auth: { type: 'oauth', client: { kind: 'dynamic' }, resource: true } });
  if (!as.token_endpoint) throw new Error(`the authorization server ${as.issuer} names no token endpoint`);
  say(`authorization server: ${as.issuer}`);
  const upstream: UpstreamConfig = {
    name,
    displayName: target.displayName,
    mcpUrl,
    scopes: [],
    auth: {
      type: 'enterprise',
      issuer: as.issuer,
      tokenEndpoint: as.token_endpoint,
      resource: true,
      client: { clientId: context.client_id, ...(context.client_secret ? { clientSecret: context.client_secret, authMethod: 'client_secret_basic' as const } : { authMethod: 'none' as const }) },
    },
  };
  const idpTokens = new IdpTokens(deps.store.oauth, deps.cipher);
  await idpTokens.save(userId, { idToken, expiresAt: decodeJwt(idToken).exp ?? Math.floor(Date.now() / 1000) + 300 });
  const idp = new OidcLogin({ issuer: context.idp_issuer, clientId: context.idp_client_id, scopes: ['openid'], redirectUri, pending: new PendingLogins(deps.store.oauth) });
  const brokered = brokeredTokens({ upstreams: [upstream], idpTokens, idp, log: deps.log });
  const caller: McpCaller = { userId, clientId: 'upstream-client', upstreams: [target] };
  return {
    headers: (to, request) => brokered.headers(caller, to, request),
    unauthorized: (to, sent, retried) => brokered.unauthorized(caller, to, sent, retried),
  };
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
  const log: Logger = { debug() {}, info() {}, warn: (message) => say(`warn: ${message}`), error: (message) => say(`error: ${message}`) };
  const enterprise = context.idp_id_token ? await enterpriseAccess(context, mcpUrl, target, { store, cipher, log }) : undefined;
  const oauthAccess: Pick<UpstreamConnectionsOptions, 'headers' | 'unauthorized' | 'insufficientScope'> = {
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
  };
  const connections = new UpstreamConnections({
    clientInfo: { name: 'consent-gateway', version: '0.1.0' },
    log,
    eras: new UpstreamEras(),
    capabilities: () => ({}),
    connectTimeoutMs: 30_000,
    ...(enterprise ?? oauthAccess),
  });
  try {
    if (!enterprise) await connect();
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

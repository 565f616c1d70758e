import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUpstreamOAuth } from '../../activities/upstream-oauth/index.js';
import { loadConfig, type GatewayConfig } from '../../server/config.js';
import { TokenCipher } from '../../server/crypto/token-cipher.js';
import { clientMetadataRoutes } from '../../server/routes/client-metadata.js';
import { SqliteStore } from '../../server/store/sqlite-store.js';
import { upstreamRedirectUri } from '../../server/upstream-config.js';
import { upstreamTokenPresentation } from '../../server/upstream-dpop.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';

describe('the gateway as a client identified by its own metadata document', () => {
  let dir: string;
  let store: SqliteStore;
  let config: GatewayConfig;
  let documentServer: Server;
  let notion: FakeUpstream;
  const fetched: string[] = [];
  const cipher = new TokenCipher(randomBytes(32));

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-cimd-client-'));
    config = loadConfig({
      env: { GATEWAY_DATA_DIR: dir, GATEWAY_PUBLIC_URL: 'https://gateway.test', GATEWAY_PORT: '3996', GATEWAY_IDENTITY_MODE: 'oidc', GATEWAY_OIDC_ISSUER: 'https://idp.test', GATEWAY_OIDC_CLIENT_ID: 'gateway' },
    });
    store = await SqliteStore.open(path.join(dir, 'gateway.sqlite'));
    // The gateway's real route, on loopback; the upstream reaches "https://gateway.test" through it.
    const app = new Koa();
    const router = clientMetadataRoutes(config);
    app.use(router.routes());
    documentServer = await new Promise((resolve) => {
      const server = app.listen(0, '127.0.0.1', () => resolve(server));
    });
    const local = `http://127.0.0.1:${(documentServer.address() as AddressInfo).port}`;
    notion = await startFakeUpstream({
      preset: 'notion',
      autoLogin: 'zoe-notion',
      clientMetadataDocuments: {
        fetch: async (url, init) => {
          fetched.push(url);
          const target = new URL(url);
          if (target.origin !== 'https://gateway.test') throw new Error(`unexpected fetch of ${url}`);
          return fetch(`${local}${target.pathname}`, { method: init.method ?? 'GET', headers: init.headers ?? {} });
        },
      },
    });
    config.upstreams = [
      { name: 'notion', displayName: 'Notion', mcpUrl: notion.mcpUrl, auth: { type: 'oauth', client: { kind: 'metadata-document' }, resource: true }, scopes: [...notion.scopes] },
    ];
  });

  afterAll(async () => {
    await notion?.close();
    await new Promise((resolve) => documentServer?.close(resolve));
    await store?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves a document whose client_id is its own URL and whose redirect URI is the upstream callback', async () => {
    const local = `http://127.0.0.1:${(documentServer.address() as AddressInfo).port}`;
    const response = await fetch(`${local}/oauth/client-metadata.json`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      client_id: 'https://gateway.test/oauth/client-metadata.json',
      client_name: 'Consent Gateway',
      client_uri: 'https://gateway.test',
      redirect_uris: ['https://gateway.test/oauth/upstream/callback'],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    });
  });

  it('authorizes at an upstream that accepts metadata documents, without registering, and the token works there', async () => {
    const activities = createUpstreamOAuth({ store, cipher, upstreams: config.upstreams, redirectUri: upstreamRedirectUri(config) });
    const { authorizationRef } = await activities.prepareUpstreamAuthorization({ flowId: 'flow-cimd', upstream: 'notion', userId: 'zoe' });
    const authorizationUrl = new URL(cipher.open((await store.getExchangeResult(authorizationRef))!, authorizationRef));
    expect(authorizationUrl.searchParams.get('client_id')).toBe('https://gateway.test/oauth/client-metadata.json');
    expect(notion.counters.registrations).toBe(0);

    // The upstream fetches the document, signs Zoe in and redirects to the gateway's callback.
    const callback = await notion.completeAuthorization(authorizationUrl);
    expect(`${callback.origin}${callback.pathname}`).toBe('https://gateway.test/oauth/upstream/callback');
    expect(fetched).toContain('https://gateway.test/oauth/client-metadata.json');

    // What the callback route does with it, then the exchange.
    const stateHash = createHash('sha256').update(callback.searchParams.get('state')!).digest('base64url');
    const completed = await store.completeUpstreamAuthorization(
      stateHash,
      {
        code: cipher.seal(callback.searchParams.get('code')!, `upstream_authorizations:${stateHash}:code`),
        callback: cipher.seal(callback.searchParams.toString(), `upstream_authorizations:${stateHash}:callback`),
      },
      Math.floor(Date.now() / 1000),
    );
    expect(completed).toBe(true);
    const connection = await activities.exchangeUpstreamCode({ flowId: 'flow-cimd', upstream: 'notion', stateHash });
    expect(connection).toMatchObject({ upstream: 'notion', status: 'connected' });
    expect(notion.counters.codeExchanges).toBe(1);

    // The upstream's authorization server binds tokens to a DPoP key (RFC 9449): each request carries a proof.
    const stored = (await store.getUpstreamTokens('zoe', 'notion'))!;
    expect(stored.tokenType.toLowerCase()).toBe('dpop');
    const presentation = upstreamTokenPresentation(cipher);
    const client = new Client({ name: 'check', version: '1' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(notion.mcpUrl), {
        fetch: async (url, init) => {
          const headers = new Headers(init?.headers);
          for (const [name, value] of Object.entries(await presentation.headers(stored, notion.mcpUrl, { method: init?.method ?? 'GET', url: String(url) }))) headers.set(name, value);
          return fetch(url, { ...init, headers });
        },
      }),
    );
    expect((await client.callTool({ name: 'whoami', arguments: {} })).content).toEqual([{ type: 'text', text: 'zoe-notion' }]);
    await client.close();
  });
});

describe('upstream discovery and registration', () => {
  let dir: string;
  let store: SqliteStore;
  let notion: FakeUpstream;
  const cipher = new TokenCipher(randomBytes(32));

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-upstream-reg-'));
    store = await SqliteStore.open(path.join(dir, 'gateway.sqlite'));
    notion = await startFakeUpstream({ preset: 'notion', autoLogin: 'someone' });
  });

  afterAll(async () => {
    await notion?.close();
    await store?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('registers once per upstream and reuses the stored client for every later user', async () => {
    const upstreams: GatewayConfig['upstreams'] = [
      { name: 'notion', displayName: 'Notion', mcpUrl: notion.mcpUrl, auth: { type: 'oauth', client: { kind: 'dynamic' }, resource: true }, scopes: [] },
    ];
    const activities = createUpstreamOAuth({ store, cipher, upstreams, redirectUri: 'http://localhost:1/oauth/upstream/callback' });
    const first = await activities.prepareUpstreamAuthorization({ flowId: 'f1', upstream: 'notion', userId: 'ann' });
    const second = await activities.prepareUpstreamAuthorization({ flowId: 'f2', upstream: 'notion', userId: 'ben' });
    // A new process (a restarted worker) finds the stored client as well.
    const restarted = createUpstreamOAuth({ store, cipher, upstreams, redirectUri: 'http://localhost:1/oauth/upstream/callback' });
    const third = await restarted.prepareUpstreamAuthorization({ flowId: 'f3', upstream: 'notion', userId: 'cid' });
    expect(notion.counters.registrations).toBe(1);
    const clientIds = await Promise.all(
      [first, second, third].map(async ({ authorizationRef }) => new URL(cipher.open((await store.getExchangeResult(authorizationRef))!, authorizationRef)).searchParams.get('client_id')),
    );
    expect(new Set(clientIds).size).toBe(1);
    expect((await store.getUpstreamClient('notion'))?.clientId).toBe(clientIds[0]);
  });

  it('uses explicit endpoints from configuration instead of discovery', async () => {
    const upstreams: GatewayConfig['upstreams'] = [
      {
        name: 'explicit',
        displayName: 'Explicit',
        mcpUrl: notion.mcpUrl,
        auth: { type: 'oauth', endpoints: { authorization: notion.authorizationEndpoint, token: notion.tokenEndpoint }, client: { kind: 'static', clientId: 'configured-id', authMethod: 'none' }, resource: true },
        scopes: ['mcp:tools'],
      },
    ];
    const activities = createUpstreamOAuth({ store, cipher, upstreams, redirectUri: 'http://localhost:1/oauth/upstream/callback' });
    const { authorizationRef } = await activities.prepareUpstreamAuthorization({ flowId: 'f4', upstream: 'explicit', userId: 'dee' });
    const url = new URL(cipher.open((await store.getExchangeResult(authorizationRef))!, authorizationRef));
    expect(`${url.origin}${url.pathname}`).toBe(notion.authorizationEndpoint);
    expect(url.searchParams.get('client_id')).toBe('configured-id');
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    expect(url.searchParams.get('resource')).toBe(notion.mcpUrl);
    expect(url.searchParams.get('scope')).toBe('mcp:tools');
    expect(url.searchParams.get('redirect_uri')).toBe('http://localhost:1/oauth/upstream/callback');
  });
});

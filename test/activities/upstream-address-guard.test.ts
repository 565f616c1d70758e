import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClientAuth } from '../../activities/upstream-oauth/client-auth.js';
import { createDiscovery, type OAuthUpstream } from '../../activities/upstream-oauth/discovery.js';
import { TokenCipher } from '../../server/crypto/token-cipher.js';
import { discoveredUrlFetch } from '../../server/net/address-guard.js';
import { SqliteStore } from '../../server/store/sqlite-store.js';

/** An http host answering GETs with the JSON served at a path and POSTs with 201 and a registered client; it counts connections. */
interface JsonHost {
  origin: string;
  connections: number;
  serve(pathname: string, body: unknown): void;
  close(): Promise<void>;
}

async function startJsonHost(host: string): Promise<JsonHost> {
  const documents = new Map<string, string>();
  const server: Server = createServer((req, res) => {
    if (req.method === 'POST') {
      res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ client_id: 'registered-here', redirect_uris: ['http://127.0.0.1:9/callback'] }));
      return;
    }
    const body = documents.get(new URL(req.url ?? '/', 'http://x').pathname);
    if (body === undefined) res.writeHead(404).end();
    else res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const result: JsonHost = {
    origin: `http://${host}:${(server.address() as AddressInfo).port}`,
    connections: 0,
    serve: (pathname, body) => documents.set(pathname, JSON.stringify(body)),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  server.on('connection', () => (result.connections += 1));
  return result;
}

function authorizationServerMetadata(issuer: string, registration: string) {
  return {
    issuer,
    authorization_endpoint: `${issuer}/authorize`,
    token_endpoint: `${issuer}/token`,
    registration_endpoint: registration,
    code_challenge_methods_supported: ['S256'],
  };
}

// 127.0.0.2 stands in for an upstream on the internet; 127.0.0.1 is the private network behind the gateway.
describe('URLs an upstream public to the gateway names', () => {
  const publicAddress = '127.0.0.2';
  let publicHost: JsonHost;
  let privateHost: JsonHost;
  let dir: string;
  let store: SqliteStore;
  const cipher = new TokenCipher(randomBytes(32));
  const redirectUri = 'http://127.0.0.1:9/oauth/upstream/callback';

  beforeAll(async () => {
    publicHost = await startJsonHost(publicAddress);
    privateHost = await startJsonHost('127.0.0.1');
    dir = await mkdtemp(path.join(tmpdir(), 'cg-upstream-guard-'));
    store = await SqliteStore.open(path.join(dir, 'gateway.sqlite'));
    publicHost.serve('/.well-known/oauth-protected-resource/mcp', { resource: `${publicHost.origin}/mcp`, authorization_servers: [privateHost.origin] });
    publicHost.serve('/.well-known/oauth-authorization-server', authorizationServerMetadata(publicHost.origin, `${privateHost.origin}/register`));
    privateHost.serve('/.well-known/oauth-authorization-server', authorizationServerMetadata(privateHost.origin, `${privateHost.origin}/register`));
  });

  afterAll(async () => {
    await publicHost.close();
    await privateHost.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const upstream = (issuer?: string): OAuthUpstream => ({
    name: `guarded-${randomBytes(4).toString('hex')}`,
    mcpUrl: `${publicHost.origin}/mcp`,
    scopes: [],
    auth: { type: 'oauth', ...(issuer ? { issuer } : {}), client: { kind: 'dynamic' }, resource: true },
  });

  it('refuses an authorization server on a private address that the resource metadata names, without connecting', async () => {
    const before = privateHost.connections;
    const discovery = createDiscovery(discoveredUrlFetch({ dangerouslyTreatAsPublic: [publicAddress] }));
    await expect(discovery(upstream())).rejects.toThrow(/resolves to an address that is not public|is not a public address/);
    expect(privateHost.connections).toBe(before);
  });

  it('refuses a registration endpoint on a private address that a configured public issuer names, without connecting', async () => {
    const fetch = discoveredUrlFetch({ dangerouslyTreatAsPublic: [publicAddress] });
    const configured = upstream(publicHost.origin);
    const as = await createDiscovery(fetch)(configured);
    expect(as.registration_endpoint).toBe(`${privateHost.origin}/register`);
    const before = privateHost.connections;
    await expect(createClientAuth({ store, cipher, redirectUri })(configured, as)).rejects.toThrow(/is not a public address/);
    expect(privateHost.connections).toBe(before);
    expect(await store.getUpstreamClient(configured.name)).toBeUndefined();
  });

  it('follows the same documents to private addresses when the upstream itself is on one (the operator put it there)', async () => {
    const fetch = discoveredUrlFetch();
    const before = privateHost.connections;
    expect((await createDiscovery(fetch)(upstream())).issuer).toBe(privateHost.origin);
    const configured = upstream(publicHost.origin);
    const as = await createDiscovery(fetch)(configured);
    expect((await createClientAuth({ store, cipher, redirectUri })(configured, as)).client.client_id).toBe('registered-here');
    expect(privateHost.connections).toBeGreaterThan(before);
  });
});

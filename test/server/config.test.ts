import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, needsUserConnection, redactStoreUrl } from '../../server/config.js';
import { projectPath } from '../../server/paths.js';

let dir: string | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  dir = undefined;
});

async function configFile(text: string): Promise<string> {
  dir = await mkdtemp(path.join(tmpdir(), 'cg-config-'));
  dirs.push(dir);
  const file = path.join(dir, 'gateway.yml');
  await writeFile(file, text);
  return file;
}

describe('loadConfig', () => {
  it('gives the embedded default with no file and no overrides', () => {
    const config = loadConfig({ env: { PATH: '/usr/bin' } });
    expect(config.temporal).toMatchObject({ embedded: true, namespace: 'default', taskQueue: 'consent-gateway', dev: {} });
    expect(config.identity.mode).toBe('dev');
    expect(config.http).toEqual({
      host: '127.0.0.1',
      port: 3000,
      publicUrl: 'http://localhost:3000',
      allowedHosts: ['localhost:3000', '127.0.0.1:3000', '[::1]:3000'],
      allowedOrigins: ['http://localhost:3000', 'http://localhost:*', 'http://127.0.0.1:*', 'http://[::1]:*'],
      trustedProxyHops: 0,
    });
    expect(config.mcp).toEqual({ toolSeparator: '__', maxBodyBytes: 4 * 1024 * 1024 });
    expect(config.store).toEqual({ backend: 'sqlite', path: projectPath('.data/gateway.sqlite'), url: `sqlite:${projectPath('.data/gateway.sqlite')}` });
    expect(config.flowTtlMs).toBe(15 * 60_000);
  });

  it('reads a YAML file and lets the environment override it', async () => {
    const file = await configFile('http:\n  port: 4000\n  publicUrl: https://gw.example.com\n  host: 0.0.0.0\nidentity:\n  mode: header\n  header:\n    trustedProxies: [10.0.0.5]\ntemporal:\n  address: temporal.internal:7233\n  namespace: prod\nflowTtl: 10m\n');
    const config = loadConfig({ file, env: { TEMPORAL_NAMESPACE: 'staging', GATEWAY_PORT: '4100' } });
    expect(config.http).toEqual({
      host: '0.0.0.0',
      port: 4100,
      publicUrl: 'https://gw.example.com',
      allowedHosts: ['gw.example.com', 'localhost:4100', '127.0.0.1:4100', '[::1]:4100'],
      allowedOrigins: ['https://gw.example.com', 'http://localhost:*', 'http://127.0.0.1:*', 'http://[::1]:*'],
      trustedProxyHops: 1,
    });
    expect(config.temporal).toMatchObject({ embedded: false, address: 'temporal.internal:7233', namespace: 'staging' });
    expect(config.identity).toEqual({ mode: 'header', header: { name: 'x-forwarded-user', trustedProxies: ['10.0.0.5'] } });
    expect(config.flowTtlMs).toBe(600_000);
    expect(config.store).toMatchObject({ backend: 'sqlite', path: path.join(dir!, '.data', 'gateway.sqlite') });
  });

  it('reads the turns of requests that wait on Temporal (temporal.flowRequests): defaults, file, environment, bad values', async () => {
    expect(loadConfig({ env: { PATH: '/usr/bin' } }).temporal.flowRequests).toEqual({ concurrency: 8, queue: 1_000, queueTimeoutMs: 60_000 });
    const file = await configFile('temporal:\n  flowRequests:\n    concurrency: 4\n    queue: 50\n    queueTimeout: 20s\n');
    expect(loadConfig({ file, env: {} }).temporal.flowRequests).toEqual({ concurrency: 4, queue: 50, queueTimeoutMs: 20_000 });
    expect(loadConfig({ file, env: { TEMPORAL_FLOW_REQUEST_CONCURRENCY: '16', TEMPORAL_FLOW_REQUEST_QUEUE: '200', TEMPORAL_FLOW_REQUEST_QUEUE_TIMEOUT: '2m' } }).temporal.flowRequests).toEqual({
      concurrency: 16,
      queue: 200,
      queueTimeoutMs: 120_000,
    });
    expect(() => loadConfig({ env: { TEMPORAL_FLOW_REQUEST_CONCURRENCY: '0' } })).toThrow(new ConfigError('temporal.flowRequests.concurrency must be a whole number, at least 1'));
    expect(() => loadConfig({ env: { TEMPORAL_FLOW_REQUEST_QUEUE_TIMEOUT: 'soon' } })).toThrow(/temporal\.flowRequests\.queueTimeout must be a duration/);
  });

  it('refuses dev identity on a non-loopback address', () => {
    expect(() => loadConfig({ env: { GATEWAY_HOST: '0.0.0.0', GATEWAY_PUBLIC_URL: 'https://gw.example.com' } })).toThrow(
      new ConfigError('identity.mode "dev" lets anyone type any user name; it is refused unless http.host is a loopback address (got "0.0.0.0")'),
    );
  });

  it('refuses a plain-http public URL that is not loopback', () => {
    expect(() => loadConfig({ env: { GATEWAY_PUBLIC_URL: 'http://gw.example.com' } })).toThrow('http.publicUrl must use https unless it is a loopback address');
  });

  it('names the key of a bad value', async () => {
    expect(() => loadConfig({ env: { GATEWAY_PORT: 'eighty' } })).toThrow('GATEWAY_PORT must be a port number (0-65535)');
    expect(() => loadConfig({ env: { GATEWAY_IDENTITY_MODE: 'magic' } })).toThrow('identity.mode must be one of dev, oidc, header (got "magic")');
    expect(() => loadConfig({ env: { GATEWAY_FLOW_TTL: 'soon' } })).toThrow('GATEWAY_FLOW_TTL must be a duration');
    const file = await configFile('http: [1, 2]\n');
    expect(() => loadConfig({ file, env: {} })).toThrow('http must be a mapping');
  });

  it('needs trusted proxy addresses in header mode and an issuer in oidc mode', () => {
    expect(() => loadConfig({ env: { GATEWAY_IDENTITY_MODE: 'header' } })).toThrow(
      'identity.mode "header" needs identity.header.trustedProxies (the reverse proxy addresses)',
    );
    expect(() => loadConfig({ env: { GATEWAY_IDENTITY_MODE: 'oidc' } })).toThrow('identity.mode "oidc" needs identity.oidc.issuer and identity.oidc.clientId');
  });

  it('validates upstreams and pre-registered clients', async () => {
    const file = await configFile(
      'upstreams:\n  - name: github\n    displayName: GitHub\n    mcpUrl: https://api.example.com/mcp\nclients:\n  - clientId: desk\n    redirectUris: [http://127.0.0.1:7777/cb]\n',
    );
    const config = loadConfig({ file, env: {} });
    expect(config.upstreams).toEqual([{ name: 'github', displayName: 'GitHub', mcpUrl: 'https://api.example.com/mcp', auth: { type: 'none' }, scopes: [] }]);
    expect(config.demoUpstream).toBe(false);
    expect(config.clients).toEqual([{ clientId: 'desk', clientName: 'desk', redirectUris: ['http://127.0.0.1:7777/cb'] }]);
    const twice = await configFile('upstreams:\n  - {name: a, mcpUrl: "https://x/mcp"}\n  - {name: a, mcpUrl: "https://y/mcp"}\n');
    expect(() => loadConfig({ file: twice, env: {} })).toThrow('upstreams[1].name "a" is used twice');
    const badUrl = await configFile('upstreams:\n  - {name: a, mcpUrl: "ftp://x"}\n');
    expect(() => loadConfig({ file: badUrl, env: {} })).toThrow('upstreams[0].mcpUrl must be an http(s) URL (got "ftp://x")');
  });

  it('reads per-tool scopes: each a scope of its upstream, mcp:upstream:<name>:<suffix>, with a clear error otherwise', async () => {
    const upstream = (toolScopes: string) => configFile(`upstreams:\n  - name: github\n    mcpUrl: https://api.example.com/mcp\n    toolScopes: ${toolScopes}\n`);
    const file = await upstream('{delete_repo: [mcp:upstream:github:write, mcp:upstream:github:admin], create_issue: mcp:upstream:github:write}');
    expect(loadConfig({ file, env: {} }).upstreams[0]?.toolScopes).toEqual({ delete_repo: ['mcp:upstream:github:write', 'mcp:upstream:github:admin'], create_issue: ['mcp:upstream:github:write'] });
    expect(loadConfig({ file: await upstream('{}'), env: {} }).upstreams[0]).not.toHaveProperty('toolScopes');
    const refusals: [string, string][] = [
      ['[delete_repo]', 'upstreams[0].toolScopes must be a mapping'],
      ['{delete_repo: []}', 'upstreams[0].toolScopes.delete_repo must be a scope or a non-empty list of scopes, each mcp:upstream:github:<suffix>'],
      ['{delete_repo: [1]}', 'upstreams[0].toolScopes.delete_repo must be a scope or a non-empty list of scopes'],
      ['{delete_repo: write}', 'upstreams[0].toolScopes.delete_repo: "write" is not a scope of this upstream; write mcp:upstream:github:<suffix>'],
      ['{delete_repo: "mcp:upstream:gitlab:write"}', '"mcp:upstream:gitlab:write" is not a scope of this upstream'],
      ['{delete_repo: "mcp:upstream:github"}', '"mcp:upstream:github" is not a scope of this upstream'],
      ['{delete_repo: "mcp:upstream:github:wr ite"}', '"ite" is not a scope of this upstream'],
      ['{delete_repo: "mcp:upstream:github:a:b"}', '"mcp:upstream:github:a:b" is not a scope of this upstream'],
    ];
    for (const [toolScopes, message] of refusals) {
      const bad = await upstream(toolScopes);
      expect(() => loadConfig({ file: bad, env: {} }), toolScopes).toThrow(ConfigError);
      expect(() => loadConfig({ file: bad, env: {} }), toolScopes).toThrow(message);
    }
  });

  it('reads how the gateway is a client at each upstream: static, dynamic registration, or its metadata document', async () => {
    const file = await configFile(
      [
        'upstreams:',
        '  - {name: a, mcpUrl: "https://a.example/mcp", auth: {type: oauth, issuer: "https://as.example", clientId: id-a, clientSecret: s}}',
        '  - {name: b, mcpUrl: "https://b.example/mcp", auth: {type: oauth}}',
        '  - {name: c, mcpUrl: "https://c.example/mcp", auth: {type: oauth, clientMetadataDocument: true, resource: false, dpop: "off"}}',
      ].join('\n'),
    );
    const [a, b, c] = loadConfig({ file, env: {} }).upstreams;
    expect(a?.auth).toEqual({ type: 'oauth', issuer: 'https://as.example/', client: { kind: 'static', clientId: 'id-a', clientSecret: 's', authMethod: 'client_secret_basic' }, resource: true, dpop: 'auto' });
    expect(b?.auth).toEqual({ type: 'oauth', client: { kind: 'dynamic' }, resource: true, dpop: 'auto' });
    expect(c?.auth).toEqual({ type: 'oauth', client: { kind: 'metadata-document' }, resource: false, dpop: 'off' });
    const badDpop = await configFile('upstreams:\n  - {name: d, mcpUrl: "https://d.example/mcp", auth: {type: oauth, dpop: always}}\n');
    expect(() => loadConfig({ file: badDpop, env: {} })).toThrow('upstreams[0].auth.dpop must be one of auto, off (got "always")');
    const bad = await configFile('upstreams:\n  - {name: d, mcpUrl: "https://d.example/mcp", auth: {type: saml}}\n');
    expect(() => loadConfig({ file: bad, env: {} })).toThrow('upstreams[0].auth.type must be one of none, oauth, token-exchange, enterprise (got "saml")');
    const untyped = await configFile('upstreams:\n  - {name: d, mcpUrl: "https://d.example/mcp", auth: {issuer: "https://as.example"}}\n');
    expect(() => loadConfig({ file: untyped, env: {} })).toThrow('upstreams[0].auth must be a mapping with type: none | oauth');
  });

  it('reads upstream auth as a tagged union, the older `auth: none` included, and tells which kinds need a per-user connection', async () => {
    const file = await configFile(
      [
        'upstreams:',
        '  - {name: a, mcpUrl: "https://a.example/mcp", auth: none}',
        '  - {name: b, mcpUrl: "https://b.example/mcp", auth: {type: none}}',
        '  - {name: c, mcpUrl: "https://c.example/mcp"}',
        '  - {name: d, mcpUrl: "https://d.example/mcp", auth: {type: oauth}}',
      ].join('\n'),
    );
    const upstreams = loadConfig({ file, env: {} }).upstreams;
    expect(upstreams.map((upstream) => upstream.auth)).toEqual([{ type: 'none' }, { type: 'none' }, { type: 'none' }, { type: 'oauth', client: { kind: 'dynamic' }, resource: true, dpop: 'auto' }]);
    expect(upstreams.map((upstream) => needsUserConnection(upstream.auth))).toEqual([false, false, false, true]);
  });

  it('takes the MCP endpoints\' Host and Origin allow-lists and body limit from the file', async () => {
    const file = await configFile('http:\n  allowedHosts: [MCP.Example.com, "localhost:3000"]\n  allowedOrigins: ["https://app.example.com"]\nmcp:\n  maxBodyBytes: 65536\n');
    const config = loadConfig({ file, env: {} });
    expect(config.http.allowedHosts).toEqual(['mcp.example.com', 'localhost:3000']);
    expect(config.http.allowedOrigins).toEqual(['https://app.example.com']);
    expect(config.mcp.maxBodyBytes).toBe(65536);
    const tiny = await configFile('mcp:\n  maxBodyBytes: 10\n');
    expect(() => loadConfig({ file: tiny, env: {} })).toThrow('mcp.maxBodyBytes must be a whole number of bytes, at least 1024');
  });

  it('says when the config file is missing or not YAML', async () => {
    expect(() => loadConfig({ file: '/nonexistent/gw.yml', env: {} })).toThrow('config file /nonexistent/gw.yml does not exist');
    const file = await configFile('http: {port: [}\n');
    expect(() => loadConfig({ file, env: {} })).toThrow(/is not valid YAML/);
  });

  describe('store', () => {
    it('opens a SQLite file from GATEWAY_STORE_PATH, relative to the data folder', () => {
      const config = loadConfig({ env: { GATEWAY_DATA_DIR: '/srv/gw', GATEWAY_STORE_PATH: 'state/gw.sqlite' } });
      expect(config.store).toEqual({ backend: 'sqlite', path: '/srv/gw/state/gw.sqlite', url: 'sqlite:/srv/gw/state/gw.sqlite' });
    });

    it('opens a SQLite file from a sqlite: URL, absolute or relative to the data folder', () => {
      expect(loadConfig({ env: { GATEWAY_DATA_DIR: '/srv/gw', GATEWAY_STORE_URL: 'sqlite:/var/lib/gw.sqlite' } }).store).toEqual({
        backend: 'sqlite',
        path: '/var/lib/gw.sqlite',
        url: 'sqlite:/var/lib/gw.sqlite',
      });
      expect(loadConfig({ env: { GATEWAY_DATA_DIR: '/srv/gw', GATEWAY_STORE_URL: 'sqlite:///var/lib/gw.sqlite' } }).store).toMatchObject({ path: '/var/lib/gw.sqlite' });
      expect(loadConfig({ env: { GATEWAY_DATA_DIR: '/srv/gw', GATEWAY_STORE_URL: 'sqlite:gw.sqlite' } }).store).toMatchObject({ path: '/srv/gw/gw.sqlite' });
    });

    it('opens PostgreSQL from store.url with the pool size from the file, and lets GATEWAY_STORE_URL override it', async () => {
      const file = await configFile('store:\n  url: postgres://gw:secret@db.internal:5432/gateway\n  poolSize: 25\n');
      expect(loadConfig({ file, env: {} }).store).toEqual({ backend: 'postgres', url: 'postgres://gw:secret@db.internal:5432/gateway', poolSize: 25 });
      expect(loadConfig({ file, env: { GATEWAY_STORE_URL: 'postgresql://other/gw' } }).store).toEqual({ backend: 'postgres', url: 'postgresql://other/gw', poolSize: 25 });
      expect(loadConfig({ file, env: { GATEWAY_STORE_PATH: 'local.sqlite' } }).store).toMatchObject({ backend: 'sqlite' });
      expect(loadConfig({ env: { GATEWAY_STORE_URL: 'postgres://db/gw' } }).store).toEqual({ backend: 'postgres', url: 'postgres://db/gw', poolSize: 10 });
    });

    it('refuses an unknown scheme without showing a password, a URL and a path together, and a bad pool size', async () => {
      expect(() => loadConfig({ env: { GATEWAY_STORE_URL: 'mysql://gw:hunter2@db/gw' } })).toThrow(
        new ConfigError('GATEWAY_STORE_URL must start with sqlite: or postgres:// (got "mysql://gw:***@db/gw")'),
      );
      expect(() => loadConfig({ env: { GATEWAY_STORE_URL: 'sqlite:' } })).toThrow('GATEWAY_STORE_URL needs a file after "sqlite:"');
      expect(() => loadConfig({ env: { GATEWAY_STORE_URL: 'postgres://db/gw', GATEWAY_STORE_PATH: 'gw.sqlite' } })).toThrow(
        'GATEWAY_STORE_URL and GATEWAY_STORE_PATH are both set; set one',
      );
      const both = await configFile('store:\n  url: postgres://db/gw\n  path: gw.sqlite\n');
      expect(() => loadConfig({ file: both, env: {} })).toThrow('store.url and store.path are both set; set one');
      const pool = await configFile('store:\n  url: postgres://db/gw\n  poolSize: 0\n');
      expect(() => loadConfig({ file: pool, env: {} })).toThrow('store.poolSize must be a whole number, at least 1');
    });

    it('hides the password of a store URL', () => {
      expect(redactStoreUrl('postgres://gw:s3cr%40t@db.internal:5432/gateway?sslmode=require')).toBe('postgres://gw:***@db.internal:5432/gateway?sslmode=require');
      expect(redactStoreUrl('postgres://db.internal/gateway')).toBe('postgres://db.internal/gateway');
      expect(redactStoreUrl('not a url with:secret@')).toBe('not a url with:…');
    });
  });
});

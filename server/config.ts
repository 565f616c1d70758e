import { existsSync, readFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import path from 'node:path';
import { parse } from 'yaml';
import { parseToolScopes, type ToolScopes } from './config/tool-scopes.js';
import { trustedProxies as parseTrustedProxies } from './config/trusted-proxies.js';
import { parseUpstreamAuth, type ConfigReader, type UpstreamAuthConfig } from './config/upstream-auth/index.js';
import { parseOAuthServerOptions, type OAuthServerOptions } from './config/oauth-server.js';
import { projectDir, projectPath } from './paths.js';

/** How the consent flow learns who the user is (DESIGN.md, decision 9). */
export const identityModes = ['dev', 'oidc', 'header'] as const;
export type IdentityMode = (typeof identityModes)[number];

/** TLS settings for a Temporal cluster or Temporal Cloud. */
export interface TemporalTlsConfig {
  serverNameOverride?: string;
  serverRootCaCertFile?: string;
  clientCertFile?: string;
  clientKeyFile?: string;
}

/** Where the gateway keeps its own state: a SQLite file (the embedded default) or a PostgreSQL database (a fleet). */
export type StoreConfig =
  | { backend: 'sqlite'; /** `sqlite:<absolute path>`. */ url: string; path: string }
  | {
      backend: 'postgres';
      /** A libpq connection URL; it may hold a password, so it is never logged as it is (see {@link redactStoreUrl}). */
      url: string;
      /** Connections the process's pool opens at most. */
      poolSize: number;
    };

export type { UpstreamAuthConfig, UpstreamClientConfig, UpstreamNoAuthConfig, UpstreamOAuthConfig } from './config/upstream-auth/index.js';
export { needsUserConnection } from './config/upstream-auth/index.js';
export type { ToolScopes } from './config/tool-scopes.js';

/** An upstream MCP server the gateway forwards to. */
export interface UpstreamConfig {
  /** Short id: tool names are `<name><separator><tool>`. */
  name: string;
  displayName: string;
  mcpUrl: string;
  /** How the gateway authenticates there: `{ type: 'none' }` (no user token), `{ type: 'oauth', … }` (each user's own grant), … */
  auth: UpstreamAuthConfig;
  scopes: string[];
  /**
   * Gateway scopes a client's token must carry to call a tool of this upstream, by the upstream's
   * tool name (`mcp:upstream:<name>:<suffix>`); a call without them is a step-up (403 `insufficient_scope`).
   */
  toolScopes?: ToolScopes | undefined;
}

/** An MCP client registered ahead in configuration. */
export interface StaticClientConfig {
  clientId: string;
  clientName: string;
  redirectUris: string[];
  /** Absent for a public client (PKCE only). */
  clientSecret?: string;
}

/** The gateway's validated configuration; built once by {@link loadConfig}. */
export interface GatewayConfig {
  /** Where relative paths in the config are resolved. */
  baseDir: string;
  dataDir: string;
  http: {
    host: string;
    port: number;
    /** The origin MCP clients use; the OAuth issuer and `/mcp` resource are derived from it. */
    publicUrl: string;
    /**
     * `Host` values (host or host:port, lower case) the MCP endpoints answer; anything else is
     * refused (DNS rebinding). Default: the public URL's host and loopback names on the port.
     */
    allowedHosts: string[];
    /** `Origin` values allowed on the MCP endpoints when a request carries one (`http://localhost:*` allows any port). Default: the public URL's origin and loopback origins. */
    allowedOrigins: string[];
    /**
     * Reverse proxies in front of the gateway, each appending to `X-Forwarded-For`: the client
     * address is the entry this many from the right. Default: 1 with an `https:` public URL, else 0.
     */
    trustedProxyHops: number;
  };
  /** Abuse limits (README, "Limits"): per minute unless named otherwise. */
  limits: LimitsConfig;
  store: StoreConfig;
  temporal: {
    /** True: run the embedded dev server from `temporal-dev.yml`. False: connect to `address`. */
    embedded: boolean;
    address: string;
    namespace: string;
    taskQueue: string;
    tls?: TemporalTlsConfig;
    apiKey?: string;
    /** How long the Temporal calls of one web request may take in all before it answers 503. */
    requestTimeoutMs: number;
    /**
     * How many of those web requests run at once in this process, how many more wait their turn,
     * and how long one may wait before it answers 503 (README, "Limits").
     */
    flowRequests: { concurrency: number; queue: number; queueTimeoutMs: number };
    /**
     * The worker's limits: tasks it runs at once, how long a stopping worker lets activities finish,
     * and how many workflows it keeps in memory between their tasks (else the SDK's default, sized
     * from the heap limit); one evicted from that cache replays its history at its next task.
     */
    worker: { maxConcurrentActivities: number; maxConcurrentWorkflowTasks: number; shutdownGraceMs: number; maxCachedWorkflows: number };
    /** Explicit path of the `temporal` CLI (`$TEMPORAL_CLI`). */
    cliPath?: string;
    /** `$PATH`, searched for the CLI. */
    searchPath: string;
    /** Installed into when no CLI is found. */
    cliInstallDir: string;
    /** Per-run changes to the embedded server's `temporal-dev.yml` settings. */
    dev: { port?: number; uiPort?: number; dbFile?: string };
  };
  identity: {
    mode: IdentityMode;
    oidc?: { issuer: string; clientId: string; clientSecret?: string; scopes: string[] };
    header?: { name: string; trustedProxies: string[] };
  };
  upstreams: UpstreamConfig[];
  /** True when no upstream is configured: `npm start` runs the bundled demo upstream. */
  demoUpstream: boolean;
  clients: StaticClientConfig[];
  oauth: OAuthServerOptions & {
    accessTokenTtlSeconds: number;
    refreshTokenTtlSeconds: number;
    /** Keys that sign the OAuth server's cookies, the first signing, all verifying; generated into the data folder when absent. */
    cookieKeys?: string[];
    /** A JWKS file of private keys the OAuth server signs with (the first key of an algorithm signs); generated into the data folder when absent. */
    signingKeysFile?: string;
    /** Registrations accepted per client address per minute. */
    registrationsPerMinute: number;
    /**
     * Test-only: resolve these client metadata document hosts to a loopback address and trust the
     * given CA. Bypasses the private-address guard for exactly these hosts.
     */
    dangerouslyResolveMetadataHosts?: Record<string, { address: string; ca: string }>;
  };
  mcp: {
    toolSeparator: string;
    /** Largest accepted MCP request body, in bytes. */
    maxBodyBytes: number;
  };
  /** 32 bytes, base64 or base64url: seals upstream tokens at rest (AES-256-GCM). Absent: generated into the data folder. */
  encryptionKey?: string;
  /** A key ring for sealing (the first seals, all open), each key with its id; wins over {@link encryptionKey}. */
  encryptionKeys?: { id: string; key: string }[];
  /** Default consent-flow lifetime. */
  flowTtlMs: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** The operator's side: the admin API, the audit trail's output and metrics. */
  operations: OperationsConfig;
}

/** Abuse limits of the authorization endpoint and the consent flows (README, "Limits"). */
export interface LimitsConfig {
  /** `/auth` requests per client address, and per client id, a minute. */
  authorization: { perAddress: number; perClient: number };
  /** Consent page loads per client address, and per client, a minute. */
  consentPage: { perAddress: number; perClient: number };
  /** Consent flows a client may have started within one flow lifetime (`flowTtl`). */
  pendingFlowsPerClient: number;
  /** Keys each in-memory limit table holds at most. */
  trackedKeys: number;
}

/** Settings of the admin API, the audit trail and `/metrics` (README, "Operating"). */
export interface OperationsConfig {
  /** Bearer token of `/admin/*` and `/metrics`; absent: both answer 403 to everyone. */
  adminToken?: string;
  /** Also write each audit entry as one JSON line to stdout, for log shippers. */
  auditStdout: boolean;
  /** Serve `/metrics` on this port (no token) instead of on the app behind the admin token. */
  metricsPort?: number;
  /** Where the Temporal worker's own Prometheus exporter listens (`host:port`); absent: off. */
  temporalMetricsAddress?: string;
  /** The Temporal Web UI's base URL for the admin API's links; the embedded server's is known without it. */
  temporalUiUrl?: string;
  /** OpenTelemetry traces (README, "Operating"); off without an OTLP endpoint. */
  tracing: {
    /** OTLP/HTTP base URL; spans go to `<otlpEndpoint>/v1/traces`. Absent: no traces are exported. */
    otlpEndpoint?: string;
    /** The `service.name` of every span. */
    serviceName: string;
  };
}

/** Raised for an invalid configuration; the message names the offending key. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

function asRecord(value: unknown, key: string): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${key} must be a mapping`);
  return value as Record<string, unknown>;
}

function asString(value: unknown, key: string): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string' && typeof value !== 'number') throw new ConfigError(`${key} must be a string`);
  return String(value);
}

function asPort(value: unknown, key: string): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError(`${key} must be a port number (0-65535)`);
  return n;
}

function asDurationMs(value: unknown, key: string): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value === 'number' && value > 0) return value * 1000;
  const match = typeof value === 'string' ? /^(\d+)\s*(ms|s|m|h)?$/.exec(value.trim()) : null;
  if (!match) throw new ConfigError(`${key} must be a duration such as 600, "90s", "10m" or "1h"`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Number(match[1]) * unit;
}

function asCount(value: unknown, key: string): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw new ConfigError(`${key} must be a whole number, at least 1`);
  return n;
}

function asHops(value: unknown, key: string): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 16) throw new ConfigError(`${key} must be a whole number from 0 to 16`);
  return n;
}

function parseLimits(limits: Record<string, unknown>): LimitsConfig {
  const authorization = asRecord(limits.authorization, 'limits.authorization');
  const consentPage = asRecord(limits.consentPage, 'limits.consentPage');
  return {
    authorization: {
      perAddress: asCount(authorization.perAddress, 'limits.authorization.perAddress') ?? 60,
      perClient: asCount(authorization.perClient, 'limits.authorization.perClient') ?? 600,
    },
    consentPage: {
      perAddress: asCount(consentPage.perAddress, 'limits.consentPage.perAddress') ?? 60,
      perClient: asCount(consentPage.perClient, 'limits.consentPage.perClient') ?? 600,
    },
    pendingFlowsPerClient: asCount(limits.pendingFlowsPerClient, 'limits.pendingFlowsPerClient') ?? 200,
    trackedKeys: asCount(limits.trackedKeys, 'limits.trackedKeys') ?? 10_000,
  };
}

const keyBytes = (text: string) => Buffer.from(text.trim(), /[-_]/.test(text) ? 'base64url' : 'base64').length;

/**
 * The sealing key ring from `GATEWAY_ENCRYPTION_KEYS` (`id:key,id:key`) or `encryptionKeys`
 * (`[{id, key}]`); the first key seals, every key opens.
 */
function parseEncryptionKeys(env: Env, value: unknown): { id: string; key: string }[] | undefined {
  const fromEnv = asString(env.GATEWAY_ENCRYPTION_KEYS, 'GATEWAY_ENCRYPTION_KEYS');
  const source = fromEnv ? 'GATEWAY_ENCRYPTION_KEYS' : 'encryptionKeys';
  let keys: { id: string; key: string }[];
  if (fromEnv) {
    keys = fromEnv.split(/[\s,]+/).filter(Boolean).map((entry) => {
      const at = entry.indexOf(':');
      return { id: entry.slice(0, at), key: at < 0 ? '' : entry.slice(at + 1) };
    });
  } else if (value === undefined || value === null) {
    return undefined;
  } else {
    if (!Array.isArray(value)) throw new ConfigError('encryptionKeys must be a list of {id, key}');
    keys = value.map((item, i) => {
      const entry = asRecord(item, `encryptionKeys[${i}]`);
      return { id: asString(entry.id, `encryptionKeys[${i}].id`) ?? '', key: asString(entry.key, `encryptionKeys[${i}].key`) ?? '' };
    });
  }
  if (keys.length === 0) throw new ConfigError(`${source} needs at least one key`);
  const ids = new Set<string>();
  for (const { id, key } of keys) {
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(id)) throw new ConfigError(`${source}: each key needs an id of 1-32 of A-Z a-z 0-9 _ - (as id:key)`);
    if (ids.has(id)) throw new ConfigError(`${source}: the key id "${id}" is used twice`);
    ids.add(id);
    if (keyBytes(key) !== 32) throw new ConfigError(`${source}: key "${id}" must be 32 bytes, base64 or base64url (e.g. \`openssl rand -base64 32\`)`);
  }
  return keys;
}

function oneOf<T extends string>(value: string | undefined, allowed: readonly T[], key: string): T | undefined {
  if (value === undefined) return undefined;
  if (!allowed.includes(value as T)) throw new ConfigError(`${key} must be one of ${allowed.join(', ')} (got "${value}")`);
  return value as T;
}

/**
 * A loopback host: `localhost`, an IPv4 literal in 127.0.0.0/8 or `::1` (brackets allowed). A
 * name that merely starts with `127.` is a DNS name like any other.
 */
function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (bare === 'localhost' || bare === '::1') return true;
  return isIPv4(bare) && bare.startsWith('127.');
}

function asStringList(value: unknown, key: string): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value.split(/[\s,]+/).filter(Boolean);
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string' || item === '')) throw new ConfigError(`${key} must be a list of strings`);
  return value as string[];
}

function absoluteUrl(value: string | undefined, key: string): string {
  if (!value) throw new ConfigError(`${key} is required`);
  try {
    const url = new URL(value);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('scheme');
    return url.href;
  } catch {
    throw new ConfigError(`${key} must be an http(s) URL (got "${value}")`);
  }
}

function parseUpstreams(value: unknown): UpstreamConfig[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new ConfigError('upstreams must be a list');
  const names = new Set<string>();
  return value.map((item, i) => {
    const entry = asRecord(item, `upstreams[${i}]`);
    const name = asString(entry.name, `upstreams[${i}].name`);
    if (!name || !/^[a-z][a-z0-9-]{0,31}$/.test(name)) throw new ConfigError(`upstreams[${i}].name must be 1-32 of a-z 0-9 - starting with a letter`);
    if (names.has(name)) throw new ConfigError(`upstreams[${i}].name "${name}" is used twice`);
    names.add(name);
    const auth = parseUpstreamAuth(entry.auth, `upstreams[${i}].auth`, configReader);
    const toolScopes = parseToolScopes(entry.toolScopes, `upstreams[${i}].toolScopes`, name, configReader);
    return {
      name,
      displayName: asString(entry.displayName, `upstreams[${i}].displayName`) ?? name,
      mcpUrl: absoluteUrl(asString(entry.mcpUrl, `upstreams[${i}].mcpUrl`), `upstreams[${i}].mcpUrl`),
      auth,
      scopes: asStringList(entry.scopes, `upstreams[${i}].scopes`) ?? [],
      ...(toolScopes ? { toolScopes } : {}),
    };
  });
}

/** The config readers an upstream auth kind parses its settings with. */
const configReader: ConfigReader = {
  record: asRecord,
  string: asString,
  url: absoluteUrl,
  oneOf,
  error: (message) => new ConfigError(message),
};

function parseClients(value: unknown): StaticClientConfig[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new ConfigError('clients must be a list');
  return value.map((item, i) => {
    const entry = asRecord(item, `clients[${i}]`);
    const clientId = asString(entry.clientId, `clients[${i}].clientId`);
    if (!clientId) throw new ConfigError(`clients[${i}].clientId is required`);
    const redirectUris = asStringList(entry.redirectUris, `clients[${i}].redirectUris`) ?? [];
    if (redirectUris.length === 0) throw new ConfigError(`clients[${i}].redirectUris needs at least one URI`);
    redirectUris.forEach((uri, j) => absoluteUrl(uri, `clients[${i}].redirectUris[${j}]`));
    const clientSecret = asString(entry.clientSecret, `clients[${i}].clientSecret`);
    return {
      clientId,
      clientName: asString(entry.clientName, `clients[${i}].clientName`) ?? clientId,
      redirectUris,
      ...(clientSecret ? { clientSecret } : {}),
    };
  });
}

/**
 * The store's location from `GATEWAY_STORE_URL` / `GATEWAY_STORE_PATH` or `store.url` / `store.path`
 * (the environment wins; within one source a URL and a path together are ambiguous and refused).
 * Relative SQLite paths are resolved against the data folder.
 */
function parseStore(env: Env, store: Record<string, unknown>, dataDir: string): StoreConfig {
  const pick = (url: string | undefined, file: string | undefined, urlKey: string, pathKey: string) => {
    if (url !== undefined && file !== undefined) throw new ConfigError(`${urlKey} and ${pathKey} are both set; set one`);
    return url !== undefined ? { url, key: urlKey } : file !== undefined ? { url: `sqlite:${file}`, key: pathKey } : undefined;
  };
  const chosen =
    pick(asString(env.GATEWAY_STORE_URL, 'GATEWAY_STORE_URL'), asString(env.GATEWAY_STORE_PATH, 'GATEWAY_STORE_PATH'), 'GATEWAY_STORE_URL', 'GATEWAY_STORE_PATH') ??
    pick(asString(store.url, 'store.url'), asString(store.path, 'store.path'), 'store.url', 'store.path') ?? { url: 'sqlite:gateway.sqlite', key: 'store.url' };
  const poolSize = store.poolSize ?? 10;
  if (typeof poolSize !== 'number' || !Number.isInteger(poolSize) || poolSize < 1) throw new ConfigError('store.poolSize must be a whole number, at least 1');
  if (chosen.url.startsWith('sqlite:')) {
    const file = chosen.url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (file === '') throw new ConfigError(`${chosen.key} needs a file after "sqlite:"`);
    const resolved = path.resolve(dataDir, file);
    return { backend: 'sqlite', url: `sqlite:${resolved}`, path: resolved };
  }
  if (/^postgres(ql)?:\/\//.test(chosen.url)) {
    try {
      new URL(chosen.url);
    } catch {
      throw new ConfigError(`${chosen.key} is not a valid PostgreSQL URL (${redactStoreUrl(chosen.url)})`);
    }
    return { backend: 'postgres', url: chosen.url, poolSize };
  }
  throw new ConfigError(`${chosen.key} must start with sqlite: or postgres:// (got "${redactStoreUrl(chosen.url)}")`);
}

function asSwitch(value: unknown, key: string): boolean | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value === 'boolean') return value;
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new ConfigError(`${key} must be true or false`);
}

/** `admin`, `audit` and `metrics` from the YAML file, each overridden by its variable. */
function parseOperations(env: Env, raw: Record<string, unknown>): OperationsConfig {
  const admin = asRecord(raw.admin, 'admin');
  const audit = asRecord(raw.audit, 'audit');
  const metrics = asRecord(raw.metrics, 'metrics');
  const adminToken = asString(env.GATEWAY_ADMIN_TOKEN, 'GATEWAY_ADMIN_TOKEN') ?? asString(admin.token, 'admin.token');
  // The token guards revoking every user: a short one could be guessed.
  if (adminToken !== undefined && adminToken.length < 32) throw new ConfigError('admin.token (GATEWAY_ADMIN_TOKEN) must be at least 32 characters (e.g. `openssl rand -base64 32`)');
  const metricsPort = asPort(env.GATEWAY_METRICS_PORT, 'GATEWAY_METRICS_PORT') ?? asPort(metrics.port, 'metrics.port');
  const temporalMetricsAddress = asString(env.GATEWAY_TEMPORAL_METRICS_ADDRESS, 'GATEWAY_TEMPORAL_METRICS_ADDRESS') ?? asString(metrics.temporalAddress, 'metrics.temporalAddress');
  if (temporalMetricsAddress !== undefined && !/^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(temporalMetricsAddress)) {
    throw new ConfigError(`metrics.temporalAddress must be host:port (got "${temporalMetricsAddress}")`);
  }
  const temporalUiUrl = asString(env.GATEWAY_TEMPORAL_UI_URL, 'GATEWAY_TEMPORAL_UI_URL') ?? asString(admin.temporalUiUrl, 'admin.temporalUiUrl');
  const tracing = asRecord(raw.tracing, 'tracing');
  const otlpEndpoint = asString(env.OTEL_EXPORTER_OTLP_ENDPOINT, 'OTEL_EXPORTER_OTLP_ENDPOINT') ?? asString(tracing.otlpEndpoint, 'tracing.otlpEndpoint');
  return {
    ...(adminToken !== undefined ? { adminToken } : {}),
    auditStdout: asSwitch(env.GATEWAY_AUDIT_STDOUT, 'GATEWAY_AUDIT_STDOUT') ?? asSwitch(audit.stdout, 'audit.stdout') ?? false,
    ...(metricsPort !== undefined ? { metricsPort } : {}),
    ...(temporalMetricsAddress !== undefined ? { temporalMetricsAddress } : {}),
    ...(temporalUiUrl !== undefined ? { temporalUiUrl: absoluteUrl(temporalUiUrl, 'admin.temporalUiUrl').replace(/\/+$/, '') } : {}),
    tracing: {
      ...(otlpEndpoint !== undefined ? { otlpEndpoint: absoluteUrl(otlpEndpoint, 'tracing.otlpEndpoint').replace(/\/+$/, '') } : {}),
      serviceName: asString(env.OTEL_SERVICE_NAME, 'OTEL_SERVICE_NAME') ?? asString(tracing.serviceName, 'tracing.serviceName') ?? 'consent-gateway',
    },
  };
}

/** The store URL with any password replaced by `***`, fit for logs and error messages. */
export function redactStoreUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.href;
  } catch {
    // Unparsable: where a password would start is unknown, so only the scheme is shown.
    return `${url.split(':')[0] ?? ''}:…`;
  }
}

/** Options for {@link loadConfig}. */
export interface LoadConfigOptions {
  /** Environment to read overrides from; defaults to the process environment. */
  env?: Env;
  /** Config file; defaults to `$GATEWAY_CONFIG`, else `consent-gateway.yml` when present. */
  file?: string;
}

/**
 * Loads the configuration from a YAML file plus environment overrides and validates it.
 * No file and no overrides gives the embedded default: dev identity, the embedded Temporal dev
 * server, SQLite under `.data/`.
 */
export function loadConfig(options: LoadConfigOptions = {}): GatewayConfig {
  const env = options.env ?? process.env;
  const file = options.file ?? env.GATEWAY_CONFIG ?? (existsSync(projectPath('consent-gateway.yml')) ? projectPath('consent-gateway.yml') : undefined);
  let raw: Record<string, unknown> = {};
  let baseDir = projectDir;
  if (file) {
    if (!existsSync(file)) throw new ConfigError(`config file ${file} does not exist`);
    try {
      raw = asRecord(parse(readFileSync(file, 'utf8')), path.basename(file));
    } catch (error) {
      if (error instanceof ConfigError) throw error;
      throw new ConfigError(`config file ${file} is not valid YAML: ${(error as Error).message}`);
    }
    baseDir = path.dirname(path.resolve(file));
  }
  const http = asRecord(raw.http, 'http');
  const store = asRecord(raw.store, 'store');
  const temporal = asRecord(raw.temporal, 'temporal');
  const tls = asRecord(temporal.tls, 'temporal.tls');
  const identity = asRecord(raw.identity, 'identity');

  const dataDir = path.resolve(baseDir, asString(env.GATEWAY_DATA_DIR, 'GATEWAY_DATA_DIR') ?? asString(raw.dataDir, 'dataDir') ?? '.data');
  const host = asString(env.GATEWAY_HOST, 'GATEWAY_HOST') ?? asString(http.host, 'http.host') ?? '127.0.0.1';
  const port = asPort(env.GATEWAY_PORT ?? env.PORT, 'GATEWAY_PORT') ?? asPort(http.port, 'http.port') ?? 3000;
  const publicUrlRaw = asString(env.GATEWAY_PUBLIC_URL, 'GATEWAY_PUBLIC_URL') ?? asString(http.publicUrl, 'http.publicUrl') ?? `http://localhost:${port}`;
  let publicUrl: URL;
  try {
    publicUrl = new URL(publicUrlRaw);
  } catch {
    throw new ConfigError(`http.publicUrl must be an absolute URL (got "${publicUrlRaw}")`);
  }
  if (publicUrl.protocol !== 'https:' && !(publicUrl.protocol === 'http:' && isLoopback(publicUrl.hostname))) {
    throw new ConfigError('http.publicUrl must use https unless it is a loopback address');
  }
  if (publicUrl.search || publicUrl.hash) throw new ConfigError('http.publicUrl must not have a query or fragment');

  const address = asString(env.TEMPORAL_ADDRESS, 'TEMPORAL_ADDRESS') ?? asString(temporal.address, 'temporal.address');
  const identityMode = oneOf(asString(env.GATEWAY_IDENTITY_MODE, 'GATEWAY_IDENTITY_MODE') ?? asString(identity.mode, 'identity.mode'), identityModes, 'identity.mode') ?? 'dev';
  if (identityMode === 'dev' && !isLoopback(host)) {
    throw new ConfigError(`identity.mode "dev" lets anyone type any user name; it is refused unless http.host is a loopback address (got "${host}")`);
  }
  if (identityMode === 'dev' && !isLoopback(publicUrl.hostname)) {
    throw new ConfigError(`identity.mode "dev" lets anyone type any user name; it is refused unless http.publicUrl is a loopback address too (got "${publicUrl.host}")`);
  }
  const tlsConfig: TemporalTlsConfig = {};
  for (const key of ['serverNameOverride', 'serverRootCaCertFile', 'clientCertFile', 'clientKeyFile'] as const) {
    const value = asString(tls[key], `temporal.tls.${key}`);
    if (value) tlsConfig[key] = key === 'serverNameOverride' ? value : path.resolve(baseDir, value);
  }
  const apiKey = asString(env.TEMPORAL_API_KEY, 'TEMPORAL_API_KEY') ?? asString(temporal.apiKey, 'temporal.apiKey');
  const cliPath = asString(env.TEMPORAL_CLI, 'TEMPORAL_CLI');
  const devPort = asPort(env.TEMPORAL_DEV_PORT, 'TEMPORAL_DEV_PORT');
  const devUiPort = asPort(env.TEMPORAL_DEV_UI_PORT, 'TEMPORAL_DEV_UI_PORT');
  const devDbFile = asString(env.TEMPORAL_DEV_DB_FILE, 'TEMPORAL_DEV_DB_FILE');

  const upstreams = parseUpstreams(raw.upstreams);
  const clients = parseClients(raw.clients);
  const oauth = asRecord(raw.oauth, 'oauth');
  const mcp = asRecord(raw.mcp, 'mcp');
  const oidc = asRecord(identity.oidc, 'identity.oidc');
  const header = asRecord(identity.header, 'identity.header');
  const identityConfig: GatewayConfig['identity'] = { mode: identityMode };
  if (identityMode === 'oidc') {
    const issuer = asString(env.GATEWAY_OIDC_ISSUER, 'GATEWAY_OIDC_ISSUER') ?? asString(oidc.issuer, 'identity.oidc.issuer');
    const clientId = asString(env.GATEWAY_OIDC_CLIENT_ID, 'GATEWAY_OIDC_CLIENT_ID') ?? asString(oidc.clientId, 'identity.oidc.clientId');
    if (!issuer || !clientId) throw new ConfigError('identity.mode "oidc" needs identity.oidc.issuer and identity.oidc.clientId');
    const issuerUrl = new URL(absoluteUrl(issuer, 'identity.oidc.issuer'));
    if (issuerUrl.protocol !== 'https:' && !isLoopback(issuerUrl.hostname.replace(/^\[|\]$/g, ''))) {
      throw new ConfigError('identity.oidc.issuer must use https unless it is a loopback address');
    }
    const clientSecret = asString(env.GATEWAY_OIDC_CLIENT_SECRET, 'GATEWAY_OIDC_CLIENT_SECRET') ?? asString(oidc.clientSecret, 'identity.oidc.clientSecret');
    const scopes = asStringList(oidc.scopes, 'identity.oidc.scopes') ?? ['openid'];
    if (!scopes.includes('openid')) throw new ConfigError('identity.oidc.scopes must include "openid"');
    identityConfig.oidc = {
      issuer,
      clientId,
      ...(clientSecret ? { clientSecret } : {}),
      scopes,
    };
  }
  if (identityMode === 'header') {
    const trustedProxies = asStringList(header.trustedProxies, 'identity.header.trustedProxies') ?? [];
    if (trustedProxies.length === 0) throw new ConfigError('identity.mode "header" needs identity.header.trustedProxies (the reverse proxy addresses)');
    try {
      parseTrustedProxies(trustedProxies);
    } catch (error) {
      throw new ConfigError(`identity.header.trustedProxies: ${(error as Error).message}`);
    }
    const name = (asString(header.name, 'identity.header.name') ?? 'x-forwarded-user').toLowerCase();
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name)) throw new ConfigError(`identity.header.name must be an HTTP header name (got "${name}")`);
    identityConfig.header = { name, trustedProxies };
  }
  // These kinds reach the upstream with the user's IdP sign-in, which only the oidc mode has.
  const signInBound = upstreams.findIndex((upstream) => upstream.auth.type === 'token-exchange' || upstream.auth.type === 'enterprise');
  if (signInBound >= 0 && identityMode !== 'oidc') {
    throw new ConfigError(`upstreams[${signInBound}].auth.type ${upstreams[signInBound]!.auth.type} needs identity.mode "oidc" (the user's sign-in at the identity provider)`);
  }
  const encryptionKey = asString(env.GATEWAY_ENCRYPTION_KEY, 'GATEWAY_ENCRYPTION_KEY') ?? asString(raw.encryptionKey, 'encryptionKey');
  if (encryptionKey && Buffer.from(encryptionKey, /[-_]/.test(encryptionKey) ? 'base64url' : 'base64').length !== 32) {
    throw new ConfigError('GATEWAY_ENCRYPTION_KEY must be 32 bytes, base64 or base64url (e.g. `openssl rand -base64 32`)');
  }
  const encryptionKeys = parseEncryptionKeys(env, raw.encryptionKeys);
  const separator = asString(mcp.toolSeparator, 'mcp.toolSeparator') ?? '__';
  if (!/^[A-Za-z0-9_.-]{1,4}$/.test(separator)) throw new ConfigError('mcp.toolSeparator must be 1 to 4 of A-Z a-z 0-9 _ . -');
  const cookieKeys = asStringList(env.GATEWAY_COOKIE_KEYS, 'GATEWAY_COOKIE_KEYS') ?? asStringList(oauth.cookieKeys, 'oauth.cookieKeys');
  if (cookieKeys && cookieKeys.some((key) => key.length < 32)) throw new ConfigError('oauth.cookieKeys (GATEWAY_COOKIE_KEYS) must each be at least 32 characters');
  const signingKeysFile = asString(env.GATEWAY_SIGNING_KEYS_FILE, 'GATEWAY_SIGNING_KEYS_FILE') ?? asString(oauth.signingKeysFile, 'oauth.signingKeysFile');
  const worker = asRecord(temporal.worker, 'temporal.worker');
  const flowRequests = asRecord(temporal.flowRequests, 'temporal.flowRequests');

  const maxBodyBytes = mcp.maxBodyBytes ?? 4 * 1024 * 1024;
  if (typeof maxBodyBytes !== 'number' || !Number.isInteger(maxBodyBytes) || maxBodyBytes < 1024) throw new ConfigError('mcp.maxBodyBytes must be a whole number of bytes, at least 1024');
  const loopbackNames = ['localhost', '127.0.0.1', '[::1]'];
  const allowedHosts = (asStringList(http.allowedHosts, 'http.allowedHosts') ?? [publicUrl.host, ...loopbackNames.map((name) => `${name}:${port}`)]).map((entry) => entry.toLowerCase());
  const allowedOrigins = (asStringList(http.allowedOrigins, 'http.allowedOrigins') ?? [publicUrl.origin, ...loopbackNames.map((name) => `http://${name}:*`)]).map((entry) => entry.toLowerCase());

  return {
    baseDir,
    dataDir,
    http: {
      host,
      port,
      publicUrl: publicUrl.href.replace(/\/$/, ''),
      allowedHosts: [...new Set(allowedHosts)],
      allowedOrigins: [...new Set(allowedOrigins)],
      trustedProxyHops: asHops(env.GATEWAY_TRUSTED_PROXY_HOPS ?? http.trustedProxyHops, 'http.trustedProxyHops') ?? (publicUrl.protocol === 'https:' ? 1 : 0),
    },
    limits: parseLimits(asRecord(raw.limits, 'limits')),
    store: parseStore(env, store, dataDir),
    temporal: {
      embedded: address === undefined,
      address: address ?? '',
      namespace: asString(env.TEMPORAL_NAMESPACE, 'TEMPORAL_NAMESPACE') ?? asString(temporal.namespace, 'temporal.namespace') ?? 'default',
      taskQueue: asString(env.TEMPORAL_TASK_QUEUE, 'TEMPORAL_TASK_QUEUE') ?? asString(temporal.taskQueue, 'temporal.taskQueue') ?? 'consent-gateway',
      ...(Object.keys(tlsConfig).length > 0 || temporal.tls === true ? { tls: tlsConfig } : {}),
      ...(apiKey ? { apiKey } : {}),
      requestTimeoutMs: asDurationMs(env.TEMPORAL_REQUEST_TIMEOUT ?? temporal.requestTimeout, 'temporal.requestTimeout') ?? 4_000,
      flowRequests: {
        concurrency: asCount(env.TEMPORAL_FLOW_REQUEST_CONCURRENCY ?? flowRequests.concurrency, 'temporal.flowRequests.concurrency') ?? 8,
        queue: asCount(env.TEMPORAL_FLOW_REQUEST_QUEUE ?? flowRequests.queue, 'temporal.flowRequests.queue') ?? 1_000,
        queueTimeoutMs: asDurationMs(env.TEMPORAL_FLOW_REQUEST_QUEUE_TIMEOUT ?? flowRequests.queueTimeout, 'temporal.flowRequests.queueTimeout') ?? 60_000,
      },
      worker: {
        maxConcurrentActivities: asCount(env.TEMPORAL_WORKER_MAX_ACTIVITIES ?? worker.maxConcurrentActivities, 'temporal.worker.maxConcurrentActivities') ?? 100,
        maxConcurrentWorkflowTasks: asCount(env.TEMPORAL_WORKER_MAX_WORKFLOW_TASKS ?? worker.maxConcurrentWorkflowTasks, 'temporal.worker.maxConcurrentWorkflowTasks') ?? 40,
        shutdownGraceMs: asDurationMs(env.TEMPORAL_WORKER_SHUTDOWN_GRACE ?? worker.shutdownGraceTime, 'temporal.worker.shutdownGraceTime') ?? 5_000,
        // Flows waiting on their users and idle grant workflows beyond it are evicted and replay at their next task (README, "Memory").
        maxCachedWorkflows: asCount(env.TEMPORAL_WORKER_MAX_CACHED_WORKFLOWS ?? worker.maxCachedWorkflows, 'temporal.worker.maxCachedWorkflows') ?? 50,
      },
      ...(cliPath ? { cliPath } : {}),
      searchPath: env.PATH ?? '',
      cliInstallDir: projectPath('.temporal'),
      dev: {
        ...(devPort ? { port: devPort } : {}),
        ...(devUiPort ? { uiPort: devUiPort } : {}),
        ...(devDbFile ? { dbFile: path.resolve(baseDir, devDbFile) } : {}),
      },
    },
    identity: identityConfig,
    upstreams,
    demoUpstream: raw.upstreams === undefined,
    clients,
    oauth: {
      accessTokenTtlSeconds: Math.round((asDurationMs(env.GATEWAY_ACCESS_TOKEN_TTL, 'GATEWAY_ACCESS_TOKEN_TTL') ?? asDurationMs(oauth.accessTokenTtl, 'oauth.accessTokenTtl') ?? 3_600_000) / 1000),
      refreshTokenTtlSeconds: Math.round((asDurationMs(oauth.refreshTokenTtl, 'oauth.refreshTokenTtl') ?? 30 * 86_400_000) / 1000),
      ...(cookieKeys ? { cookieKeys } : {}),
      ...(signingKeysFile ? { signingKeysFile: path.resolve(baseDir, signingKeysFile) } : {}),
      ...parseOAuthServerOptions(oauth, configReader),
      registrationsPerMinute: typeof oauth.registrationsPerMinute === 'number' ? oauth.registrationsPerMinute : 20,
    },
    mcp: { toolSeparator: separator, maxBodyBytes },
    ...(encryptionKey ? { encryptionKey } : {}),
    ...(encryptionKeys ? { encryptionKeys } : {}),
    flowTtlMs: asDurationMs(env.GATEWAY_FLOW_TTL, 'GATEWAY_FLOW_TTL') ?? asDurationMs(raw.flowTtl, 'flowTtl') ?? 15 * 60_000,
    logLevel: oneOf(asString(env.GATEWAY_LOG_LEVEL, 'GATEWAY_LOG_LEVEL') ?? asString(raw.logLevel, 'logLevel'), ['debug', 'info', 'warn', 'error'] as const, 'logLevel') ?? 'info',
    operations: parseOperations(env, raw),
  };
}

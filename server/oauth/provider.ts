import { createHash, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import Provider, { errors, type ClientModel, type ProviderContext } from 'oidc-provider';
import type { GatewayConfig } from '../config.js';
import type { Logger } from '../log.js';
import type { GatewayStore, RateLimitStore } from '../store/store.js';
import { mcpResources, type McpResources } from '../mcp/resources.js';
import { createOidcAdapter } from './adapter.js';
import { renderErrorPage } from './error-page.js';

/** The scope every MCP client gets for `/mcp`. */
export const mcpScope = 'mcp:tools';

/** The gateway's OAuth server and the values the rest of the app derives from it. */
export interface OAuthServer {
  provider: Provider;
  issuer: string;
  /** The aggregate protected resource (RFC 8707 / RFC 9728): `<public URL>/mcp`. */
  mcpResource: string;
  /** Every MCP protected resource: `/mcp` and each upstream's `/mcp/<name>`. */
  resources: McpResources;
  /** How a client got its id, for the approve screen. */
  registrationOf(client: ClientModel): 'dcr' | 'cimd' | 'static';
}

/** Keys the OAuth server signs with: cookie keys and a JSON Web Key Set. */
export interface ServerKeys {
  cookieKeys: string[];
  jwks: { keys: Record<string, unknown>[] };
}

/**
 * The server keys: cookie keys from `oauth.cookieKeys` (`GATEWAY_COOKIE_KEYS`) and signing keys from
 * the JWKS file `oauth.signingKeysFile` (`GATEWAY_SIGNING_KEYS_FILE`), each a ring whose first key
 * signs and whose every key verifies. What is not configured is read from the data folder,
 * generated there on first run (with a warning), so cookies and signatures survive restarts.
 */
export async function loadServerKeys(config: GatewayConfig, log: Logger): Promise<ServerKeys> {
  const configuredJwks = config.oauth.signingKeysFile ? await readSigningKeys(config.oauth.signingKeysFile) : undefined;
  if (config.oauth.cookieKeys && configuredJwks) return { cookieKeys: config.oauth.cookieKeys, jwks: configuredJwks };
  const file = path.join(config.dataDir, 'server-keys.json');
  let stored: Partial<ServerKeys> = {};
  try {
    stored = JSON.parse(await readFile(file, 'utf8')) as Partial<ServerKeys>;
  } catch {
    // Absent or unreadable: generate below.
  }
  const validCookieKeys = Array.isArray(stored.cookieKeys) && stored.cookieKeys.every((key) => typeof key === 'string' && key.length >= 32);
  const validJwks = Array.isArray(stored.jwks?.keys) && stored.jwks.keys.length > 0;
  if (!validCookieKeys || !validJwks) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    stored = {
      cookieKeys: validCookieKeys ? stored.cookieKeys : [randomBytes(32).toString('base64url')],
      jwks: validJwks ? stored.jwks : { keys: [{ ...privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: randomUUID() }] },
    };
    await mkdir(config.dataDir, { recursive: true });
    await writeFile(file, JSON.stringify(stored), { mode: 0o600 });
    log.warn('generated server keys into the data folder; set GATEWAY_COOKIE_KEYS and GATEWAY_SIGNING_KEYS_FILE in production', { file });
  }
  return { cookieKeys: config.oauth.cookieKeys ?? (stored.cookieKeys as string[]), jwks: configuredJwks ?? (stored.jwks as ServerKeys['jwks']) };
}

/** Reads a JWKS of private signing keys; each needs a `kid`, so tokens name the key that signed them (RFC 7517 §4.5). */
async function readSigningKeys(file: string): Promise<ServerKeys['jwks']> {
  let jwks: { keys?: unknown };
  try {
    jwks = JSON.parse(await readFile(file, 'utf8')) as { keys?: unknown };
  } catch (error) {
    throw new Error(`the signing keys file ${file} is not a readable JWKS: ${(error as Error).message}`);
  }
  const keys = Array.isArray(jwks.keys) ? (jwks.keys as Record<string, unknown>[]) : [];
  if (keys.length === 0 || keys.some((key) => typeof key.kid !== 'string' || typeof key.d !== 'string')) {
    throw new Error(`the signing keys file ${file} must hold {"keys": [...]} of private keys, each with a kid`);
  }
  return { keys };
}

const loopbackHosts = new Set(['127.0.0.1', '[::1]', 'localhost']);
const forbiddenSchemes = new Set(['javascript:', 'data:', 'vbscript:', 'file:', 'blob:', 'about:']);

/**
 * Redirect URIs the gateway accepts at registration (OAuth 2.1 §2.3.1, RFC 8252 §7): https, http
 * on a loopback host only, or a native app's private-use scheme; never a script or data URL.
 */
function validateRedirectUris(_ctx: unknown, key: string, value: unknown): void {
  if (key !== 'redirect_uris' || !Array.isArray(value)) return;
  for (const uri of value) {
    let url: URL;
    try {
      url = new URL(String(uri));
    } catch {
      throw new errors.InvalidRedirectUri(`${String(uri)} is not an absolute URI`);
    }
    if (url.protocol === 'https:') continue;
    if (url.protocol === 'http:') {
      if (loopbackHosts.has(url.hostname)) continue;
      throw new errors.InvalidRedirectUri('http redirect URIs must use a loopback host (127.0.0.1, [::1] or localhost); use https otherwise');
    }
    if (forbiddenSchemes.has(url.protocol)) throw new errors.InvalidRedirectUri(`${url.protocol} redirect URIs are not allowed`);
  }
}

/**
 * A sliding one-minute window per key, kept in the store so that every process of a fleet counts
 * the same hits; keys are hashed, so client addresses are not stored as they are.
 */
function rateLimiter(store: RateLimitStore, limit: number) {
  return (key: string): Promise<boolean> => store.takeHit(`registration:${createHash('sha256').update(key).digest('base64url')}`, Date.now(), 60_000, limit);
}

/**
 * fetch for client metadata documents whose host the config maps to a loopback address (tests).
 * Everything else goes through oidc-provider's own fetch with its private-address guard.
 */
function metadataFetch(hosts: NonNullable<GatewayConfig['oauth']['dangerouslyResolveMetadataHosts']>) {
  return async (url: string | URL, options: RequestInit & { dispatcher?: unknown }): Promise<Response> => {
    const target = new URL(url);
    const mapped = hosts[target.hostname];
    if (!mapped) return globalThis.fetch(target, options as RequestInit);
    return new Promise((resolve, reject) => {
      const request = https.get(
        {
          host: mapped.address,
          port: target.port || 443,
          path: `${target.pathname}${target.search}`,
          servername: target.hostname,
          ca: mapped.ca,
          headers: { host: target.host, accept: 'application/json' },
          timeout: 2_500,
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => {
            const headers = new Headers();
            for (const [name, value] of Object.entries(response.headers)) {
              if (typeof value === 'string') headers.set(name, value);
            }
            resolve(new Response(Buffer.concat(chunks), { status: response.statusCode ?? 500, headers }));
          });
          response.on('error', reject);
        },
      );
      request.on('timeout', () => request.destroy(new Error('timeout')));
      request.on('error', reject);
    });
  };
}

/**
 * Creates the gateway's OAuth 2.1 authorization server for MCP clients (oidc-provider):
 * authorization code + PKCE S256 only, resource indicators binding tokens to `/mcp` (RFC 8707),
 * `iss` in responses (RFC 9207), dynamic registration (RFC 7591), client ID metadata documents,
 * rotating refresh tokens, revocation (RFC 7009). Its storage is the gateway's store.
 */
export function createOAuthServer(
  config: GatewayConfig,
  deps: { store: GatewayStore; log: Logger; keys: ServerKeys },
): OAuthServer {
  const issuer = config.http.publicUrl;
  const resources = mcpResources(issuer, config.upstreams.map((upstream) => upstream.name));
  const mcpResource = resources.aggregate;
  const staticIds = new Set(config.clients.map((client) => client.clientId));
  const secure = issuer.startsWith('https:');

  const provider = new Provider(issuer, {
    adapter: createOidcAdapter(deps.store.oauth),
    jwks: deps.keys.jwks,
    enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
    clients: config.clients.map((client) => ({
      client_id: client.clientId,
      client_name: client.clientName,
      redirect_uris: client.redirectUris,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      id_token_signed_response_alg: 'ES256',
      ...(client.clientSecret
        ? { client_secret: client.clientSecret, token_endpoint_auth_method: 'client_secret_basic' }
        : { token_endpoint_auth_method: 'none' }),
    })),
    clientDefaults: {
      id_token_signed_response_alg: 'ES256',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    },
    responseTypes: ['code'],
    pkce: { required: () => true },
    extraClientMetadata: { properties: ['redirect_uris'], validator: validateRedirectUris },
    scopes: [mcpScope],
    claims: { openid: ['sub'] },
    findAccount: async (_ctx: unknown, sub: string) => ({ accountId: sub, claims: async () => ({ sub }) }),
    cookies: {
      keys: deps.keys.cookieKeys,
      names: { session: 'cg_session', interaction: 'cg_interaction', resume: 'cg_resume' },
      long: { signed: true, httpOnly: true, sameSite: 'lax', secure },
      short: { signed: true, httpOnly: true, sameSite: 'lax', secure },
    },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: config.oauth.dynamicRegistration },
      revocation: { enabled: true },
      introspection: { enabled: false },
      userinfo: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      clientIdMetadataDocument: { enabled: config.oauth.clientMetadataDocuments, ack: 'draft-02' },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => mcpResource,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, resource: string) => {
          if (!resources.parse(resource)) throw new errors.InvalidTarget(`the resources here are ${mcpResource} and ${mcpResource}/<upstream> for a configured upstream`);
          return {
            scope: mcpScope,
            audience: resource,
            accessTokenTTL: config.oauth.accessTokenTtlSeconds,
            accessTokenFormat: 'opaque',
          };
        },
      },
    },
    // Every authorization runs the consent flow (and its workflow), even when the browser already
    // holds a session and a grant: the flow decides whether to skip the approve step, and records it.
    loadExistingGrant: async (ctx: ProviderContext) => {
      const result = ctx.oidc?.result as { consent?: { grantId?: string } } | undefined;
      const grantId = result?.consent?.grantId;
      return grantId ? provider.Grant.find(grantId) : undefined;
    },
    issueRefreshToken: async (_ctx: unknown, client: ClientModel) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: true,
    expiresWithSession: () => false,
    ttl: {
      AccessToken: config.oauth.accessTokenTtlSeconds,
      AuthorizationCode: 60,
      RefreshToken: config.oauth.refreshTokenTtlSeconds,
      Grant: config.oauth.refreshTokenTtlSeconds + 86_400,
      // Outlives the consent flow, so an expired flow can still send its error to the client.
      Interaction: Math.ceil(config.flowTtlMs / 1000) + 600,
      Session: 14 * 86_400,
    },
    renderError: async (ctx: ProviderContext, out: { error: string; error_description?: string }) => {
      ctx.type = 'html';
      ctx.body = renderErrorPage(out.error, out.error_description ?? '');
    },
    ...(config.oauth.dangerouslyResolveMetadataHosts ? { fetch: metadataFetch(config.oauth.dangerouslyResolveMetadataHosts) } : {}),
  });
  provider.proxy = secure;

  const allowRegistration = rateLimiter(deps.store, config.oauth.registrationsPerMinute);
  provider.use(async function limitRegistration(ctx: ProviderContext, next: () => Promise<void>) {
    if (ctx.method === 'POST' && ctx.path === '/reg') {
      if (!ctx.get('content-length')) {
        ctx.status = 411;
        ctx.body = { error: 'invalid_request', error_description: 'registration requests must carry Content-Length' };
        return;
      }
      if (Number(ctx.get('content-length')) > 16 * 1024) {
        ctx.status = 413;
        ctx.body = { error: 'invalid_client_metadata', error_description: 'registration requests are limited to 16 KiB' };
        return;
      }
      if (!(await allowRegistration(ctx.ip))) {
        ctx.status = 429;
        ctx.set('Retry-After', '60');
        ctx.body = { error: 'temporarily_unavailable', error_description: 'too many registrations from this address; retry in a minute' };
        return;
      }
    }
    await next();
  });

  provider.on('server_error', (_ctx: unknown, error: Error) => deps.log.error('oauth server error', { error: error.message }));

  return {
    provider,
    issuer,
    mcpResource,
    resources,
    registrationOf: (client) => (staticIds.has(client.clientId) ? 'static' : client.clientIdMetadataDocument ? 'cimd' : 'dcr'),
  };
}

import { ApplicationFailure } from '@temporalio/activity';
import * as oauth from 'oauth4webapi';
import type { UpstreamClientSettings } from './client-auth.js';

/**
 * An upstream's OAuth settings as the activities read them. The worker passes the gateway's
 * upstream config, which satisfies this; the activities know nothing else of that config.
 */
export interface UpstreamOAuthSettings {
  type: 'oauth';
  /** For RFC 8414 / OIDC discovery; absent: the first authorization server of the MCP URL's protected resource metadata (RFC 9728). */
  issuer?: string;
  /** Explicit endpoints, instead of discovery. */
  endpoints?: { authorization: string; token: string; revocation?: string };
  client: UpstreamClientSettings;
  /** Send `resource=<mcpUrl>` (RFC 8707). */
  resource: boolean;
  /** DPoP (RFC 9449) when the authorization server advertises it (`auto`, the default) or never (`off`). */
  dpop?: 'auto' | 'off';
}

/** An upstream MCP server as the activities see it. */
export interface UpstreamSettings {
  name: string;
  mcpUrl: string;
  scopes: string[];
  /** How the gateway authenticates there; only `oauth` has activities (the rest need no per-user grant). */
  auth: { type: 'none' | 'token-exchange' | 'enterprise' } | UpstreamOAuthSettings;
}

/** An upstream that needs each user's OAuth authorization. */
export type OAuthUpstream = UpstreamSettings & { auth: UpstreamOAuthSettings };

/** A fetch as oauth4webapi calls it. */
export type UpstreamFetch = (url: string, init: RequestInit) => Promise<Response>;

/**
 * The fetch for URLs that documents reached from `configuredUrl` (an operator-configured URL) name:
 * the worker's address guard, which refuses non-public addresses unless the configured URL is on
 * one itself. Absent (tests of other things): such URLs are fetched like configured ones.
 */
export type DiscoveredUrlFetch = (configuredUrl: string) => UpstreamFetch;

/** Localhost, or an IPv4 literal in 127.0.0.0/8, or ::1; not a DNS name that starts with `127.`. */
function isLoopbackUrl(url: string): boolean {
  const hostname = new URL(url).hostname.replace(/^\[|\]$/g, '');
  return hostname === 'localhost' || hostname === '::1' || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/** The oauth4webapi request options for a call to `url`: a 10 s timeout; plain http only for loopback. */
export function httpOptions(url: string) {
  // Plain http only for loopback upstreams (development and tests); everything else must be https.
  return isLoopbackUrl(url) ? { [oauth.allowInsecureRequests]: true, signal: AbortSignal.timeout(10_000) } : { signal: AbortSignal.timeout(10_000) };
}

/** The fetch for each discovered authorization server's endpoints (token, registration, revocation). */
const endpointFetch = new WeakMap<oauth.AuthorizationServer, UpstreamFetch>();

/**
 * {@link httpOptions} for a call to an endpoint `as` names: through the address guard when `as`
 * came from discovery, since its metadata document, not the operator, named the endpoint.
 */
export function endpointOptions(as: oauth.AuthorizationServer, url: string) {
  const fetch = endpointFetch.get(as);
  return { ...httpOptions(url), ...(fetch ? { [oauth.customFetch]: fetch } : {}) };
}

/** Authorization server metadata of `issuer` (RFC 8414, then OpenID Connect Discovery). */
async function discover(issuer: string, fetch: UpstreamFetch | undefined): Promise<oauth.AuthorizationServer> {
  const url = new URL(issuer);
  for (const algorithm of ['oauth2', 'oidc'] as const) {
    try {
      const response = await oauth.discoveryRequest(url, { algorithm, ...httpOptions(issuer), ...(fetch ? { [oauth.customFetch]: fetch } : {}) });
      return await oauth.processDiscoveryResponse(url, response);
    } catch (error) {
      if (algorithm === 'oidc') throw error;
    }
  }
  throw new Error('unreachable');
}

/** What the MCP URL's `WWW-Authenticate` challenge to a request without a token says (RFC 9728 §5.1, RFC 6750 §3). */
interface ResourceChallenge {
  resourceMetadata?: string;
  scopes?: string[];
}

function challengeParameter(header: string, name: string): string | undefined {
  const match = new RegExp(`(?:^|[\\s,])${name}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^\\s,"]+))`, 'i').exec(header);
  return match ? (match[1] ?? match[2]) : undefined;
}

/** The first request of each protocol era, sent without a token to learn the MCP URL's challenge. */
const probes = [
  {
    version: '2026-07-28',
    method: 'server/discover',
    params: { _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientInfo': { name: 'consent-gateway', version: '0.1.0' }, 'io.modelcontextprotocol/clientCapabilities': {} } },
  },
  { version: '2025-11-25', method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'consent-gateway', version: '0.1.0' } } },
] as const;

/**
 * Asks the MCP URL without a token, as an MCP client's first request does, and reads its 401
 * challenge: `server/discover` (2026-07-28) first, then `initialize` (2025) for a server that
 * answered the first without a challenge. A server may let `initialize` through without a token
 * and challenge only later requests, so the modern request goes first.
 */
async function challengeOf(upstream: OAuthUpstream): Promise<ResourceChallenge> {
  let header: string | null = null;
  for (const probe of probes) {
    const response = await fetch(upstream.mcpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': probe.version, 'mcp-method': probe.method },
      body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: probe.method, params: probe.params }),
      signal: AbortSignal.timeout(10_000),
    }).catch(() => undefined);
    await response?.body?.cancel().catch(() => undefined);
    header = response?.status === 401 ? response.headers.get('www-authenticate') : null;
    if (header && /^\s*Bearer\b/i.test(header)) break;
  }
  if (!header || !/^\s*Bearer\b/i.test(header)) return {};
  const resourceMetadata = challengeParameter(header, 'resource_metadata');
  const scope = challengeParameter(header, 'scope');
  return { ...(resourceMetadata ? { resourceMetadata } : {}), ...(scope ? { scopes: scope.split(' ').filter(Boolean) } : {}) };
}

/** What the MCP URL's protected resource metadata says: the first authorization server it names (RFC 9728 §3), and the scopes to ask for. */
interface ResourceFindings {
  issuer: string;
  /** The `resource` as the document publishes it, to be sent exactly so (RFC 8707). */
  resource: string;
  /** The challenge's `scope`, else the metadata's `scopes_supported` (MCP Authorization §Scope Selection Strategy). */
  scopes: string[] | undefined;
}

/**
 * Reads the MCP URL's protected resource metadata (RFC 9728): from the URL its 401 challenge names
 * (`resource_metadata`, §5.1), else the path-inserted well-known URL, else the root one (§3.1).
 * The document must name the MCP URL as its resource (§3.3) wherever it came from.
 */
async function resourceFindings(upstream: OAuthUpstream, challenge: ResourceChallenge, fetchNamed: UpstreamFetch | undefined): Promise<ResourceFindings> {
  const resource = new URL(upstream.mcpUrl);
  // Each place the document may be, with the resource identifier it must name there.
  const candidates: { fetch: () => Promise<Response>; names: URL }[] = [];
  const named = challenge.resourceMetadata;
  if (named && URL.canParse(named)) {
    candidates.push({ fetch: () => (fetchNamed ?? fetch)(named, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(10_000) }), names: resource });
  }
  candidates.push({ fetch: () => oauth.resourceDiscoveryRequest(resource, httpOptions(upstream.mcpUrl)), names: resource });
  if (resource.pathname !== '/') {
    // The root form describes the origin as a whole (RFC 9728 §3.1, §3.3).
    const root = new URL(resource.origin);
    candidates.push({ fetch: () => fetch(new URL('/.well-known/oauth-protected-resource', root), { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(10_000) }), names: root });
  }
  let failure: unknown;
  for (const candidate of candidates) {
    try {
      const response = await candidate.fetch();
      if (response.status !== 200) {
        await response.body?.cancel().catch(() => undefined);
        throw new Error(`HTTP ${response.status}`);
      }
      const metadata = await oauth.processResourceDiscoveryResponse(candidate.names, response);
      const issuer = metadata.authorization_servers?.[0];
      if (!issuer) throw ApplicationFailure.nonRetryable(`${upstream.name} names no authorization server`, 'invalid_response');
      const supported = Array.isArray(metadata.scopes_supported) ? metadata.scopes_supported.filter((scope): scope is string => typeof scope === 'string') : undefined;
      return { issuer, resource: metadata.resource, scopes: challenge.scopes ?? (supported && supported.length > 0 ? supported : undefined) };
    } catch (error) {
      if (error instanceof ApplicationFailure || error instanceof oauth.OperationProcessingError) throw error;
      failure = error;
    }
  }
  throw failure;
}

/**
 * Finds each upstream's authorization server: configured endpoints, else the configured issuer,
 * else the first one its protected resource metadata names (RFC 9728). Kept once per process; with
 * `fresh`, an upstream found through its resource metadata is asked again which server it names,
 * so a move to another authorization server (MCP 2026-07-28, SEP-2352) is seen before any token
 * is sent. A failed discovery is forgotten, so the next attempt tries again.
 */
export function createDiscovery(discoveredFetch?: DiscoveredUrlFetch): UpstreamDiscovery {
  const servers = new Map<string, Promise<oauth.AuthorizationServer>>();
  /** Each upstream's challenge to a request without a token, asked once per process. */
  const challenges = new Map<string, Promise<ResourceChallenge>>();
  /** The scopes each upstream's resource metadata (or challenge) suggests, once read. */
  const suggested = new Map<string, string[]>();
  /** Each upstream's resource identifier as its metadata publishes it. */
  const published = new Map<string, string>();

  async function namedIssuer(upstream: OAuthUpstream): Promise<string> {
    let challenge = challenges.get(upstream.name);
    if (!challenge) {
      challenge = challengeOf(upstream);
      challenges.set(upstream.name, challenge);
    }
    const findings = await resourceFindings(upstream, await challenge, discoveredFetch?.(upstream.mcpUrl));
    published.set(upstream.name, findings.resource);
    if (findings.scopes) suggested.set(upstream.name, findings.scopes);
    else suggested.delete(upstream.name);
    return findings.issuer;
  }

  async function find(upstream: OAuthUpstream, named?: string): Promise<oauth.AuthorizationServer> {
    const { auth } = upstream;
    if (auth.endpoints) {
      return {
        issuer: new URL(auth.endpoints.authorization).origin,
        authorization_endpoint: auth.endpoints.authorization,
        token_endpoint: auth.endpoints.token,
        ...(auth.endpoints.revocation ? { revocation_endpoint: auth.endpoints.revocation } : {}),
        code_challenge_methods_supported: ['S256'],
      };
    }
    // The operator named the issuer or the MCP URL; an issuer named by the MCP URL's metadata, and
    // the endpoints any metadata names, are fetched through the address guard.
    const issuer = auth.issuer ?? named ?? (await namedIssuer(upstream));
    const as = await discover(issuer, auth.issuer ? undefined : discoveredFetch?.(upstream.mcpUrl));
    const fetch = discoveredFetch?.(auth.issuer ?? upstream.mcpUrl);
    if (fetch) endpointFetch.set(as, fetch);
    return as;
  }

  function remember(upstream: OAuthUpstream, named?: string): Promise<oauth.AuthorizationServer> {
    const server = find(upstream, named);
    servers.set(upstream.name, server);
    server.catch(() => {
      if (servers.get(upstream.name) === server) servers.delete(upstream.name);
    });
    return server;
  }

  async function authorizationServer(upstream: OAuthUpstream, options?: { fresh?: boolean }): Promise<oauth.AuthorizationServer> {
    const known = servers.get(upstream.name);
    if (!options?.fresh || upstream.auth.endpoints || upstream.auth.issuer) return known ?? remember(upstream);
    const named = await namedIssuer(upstream);
    const current = await known?.catch(() => undefined);
    return current?.issuer === named ? current : remember(upstream, named);
  }

  return Object.assign(authorizationServer, {
    suggestedScopes: (upstream: OAuthUpstream) => suggested.get(upstream.name) ?? [],
    publishedResource: (upstream: OAuthUpstream) => published.get(upstream.name),
  });
}

/** {@link createDiscovery}'s answer: each upstream's authorization server, and the scopes its resource suggests. */
export interface UpstreamDiscovery {
  (upstream: OAuthUpstream, options?: { fresh?: boolean }): Promise<oauth.AuthorizationServer>;
  /**
   * Scopes to ask for when none are configured (MCP Authorization §Scope Selection Strategy): the
   * `scope` of the upstream's 401 challenge, else its metadata's `scopes_supported`; empty when
   * neither was given or the authorization server came from the config.
   */
  suggestedScopes(upstream: OAuthUpstream): string[];
  /** The resource identifier as the upstream's protected resource metadata publishes it, once read. */
  publishedResource(upstream: OAuthUpstream): string | undefined;
}

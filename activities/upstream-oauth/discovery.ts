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

/** The issuer the MCP URL's protected resource metadata names first (RFC 9728 §3). */
async function namedIssuer(upstream: OAuthUpstream): Promise<string> {
  const resource = new URL(upstream.mcpUrl);
  const response = await oauth.resourceDiscoveryRequest(resource, httpOptions(upstream.mcpUrl));
  const metadata = await oauth.processResourceDiscoveryResponse(resource, response);
  const issuer = metadata.authorization_servers?.[0];
  if (!issuer) throw ApplicationFailure.nonRetryable(`${upstream.name} names no authorization server`, 'invalid_response');
  return issuer;
}

/**
 * Finds each upstream's authorization server: configured endpoints, else the configured issuer,
 * else the first one its protected resource metadata names (RFC 9728). Kept once per process; with
 * `fresh`, an upstream found through its resource metadata is asked again which server it names,
 * so a move to another authorization server (MCP 2026-07-28, SEP-2352) is seen before any token
 * is sent. A failed discovery is forgotten, so the next attempt tries again.
 */
export function createDiscovery(discoveredFetch?: DiscoveredUrlFetch): (upstream: OAuthUpstream, options?: { fresh?: boolean }) => Promise<oauth.AuthorizationServer> {
  const servers = new Map<string, Promise<oauth.AuthorizationServer>>();

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

  return async function authorizationServer(upstream, options) {
    const known = servers.get(upstream.name);
    if (!options?.fresh || upstream.auth.endpoints || upstream.auth.issuer) return known ?? remember(upstream);
    const named = await namedIssuer(upstream);
    const current = await known?.catch(() => undefined);
    return current?.issuer === named ? current : remember(upstream, named);
  };
}

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
  auth: { type: 'none' } | UpstreamOAuthSettings;
}

/** An upstream that needs each user's OAuth authorization. */
export type OAuthUpstream = UpstreamSettings & { auth: UpstreamOAuthSettings };

function isLoopbackUrl(url: string): boolean {
  const { hostname } = new URL(url);
  return hostname === 'localhost' || hostname === '[::1]' || /^127\./.test(hostname);
}

/** The oauth4webapi request options for a call to `url`: a 10 s timeout; plain http only for loopback. */
export function httpOptions(url: string) {
  // Plain http only for loopback upstreams (development and tests); everything else must be https.
  return isLoopbackUrl(url) ? { [oauth.allowInsecureRequests]: true, signal: AbortSignal.timeout(10_000) } : { signal: AbortSignal.timeout(10_000) };
}

/** Authorization server metadata of `issuer` (RFC 8414, then OpenID Connect Discovery). */
async function discover(issuer: string): Promise<oauth.AuthorizationServer> {
  const url = new URL(issuer);
  for (const algorithm of ['oauth2', 'oidc'] as const) {
    try {
      const response = await oauth.discoveryRequest(url, { algorithm, ...httpOptions(issuer) });
      return await oauth.processDiscoveryResponse(url, response);
    } catch (error) {
      if (algorithm === 'oidc') throw error;
    }
  }
  throw new Error('unreachable');
}

/**
 * Finds each upstream's authorization server once per process: configured endpoints, else the
 * configured issuer, else the first one its protected resource metadata names (RFC 9728). A failed
 * discovery is forgotten, so the next attempt tries again.
 */
export function createDiscovery(): (upstream: OAuthUpstream) => Promise<oauth.AuthorizationServer> {
  const servers = new Map<string, Promise<oauth.AuthorizationServer>>();

  async function find(upstream: OAuthUpstream): Promise<oauth.AuthorizationServer> {
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
    let issuer = auth.issuer;
    if (!issuer) {
      const resource = new URL(upstream.mcpUrl);
      const response = await oauth.resourceDiscoveryRequest(resource, httpOptions(upstream.mcpUrl));
      const metadata = await oauth.processResourceDiscoveryResponse(resource, response);
      issuer = metadata.authorization_servers?.[0];
      if (!issuer) throw ApplicationFailure.nonRetryable(`${upstream.name} names no authorization server`, 'invalid_response');
    }
    return discover(issuer);
  }

  return function authorizationServer(upstream) {
    let server = servers.get(upstream.name);
    if (!server) {
      server = find(upstream);
      servers.set(upstream.name, server);
      server.catch(() => servers.delete(upstream.name));
    }
    return server;
  };
}

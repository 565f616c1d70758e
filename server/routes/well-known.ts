import Router from '@koa/router';
import type { Context, Next } from 'koa';
import type { UpstreamConfig } from '../config.js';
import { mcpScope, type OAuthServer } from '../oauth/provider.js';

/**
 * RFC 9728 Protected Resource Metadata for `/mcp` and for each upstream's own endpoint
 * `/mcp/<upstream>`, each at its path-inserted URL (§3.1); the root form answers for `/mcp`.
 * The authorization server's RFC 8414 metadata is the OAuth server's own, at
 * `/.well-known/oauth-authorization-server` (and `/.well-known/openid-configuration`); when the
 * issuer has a path, also at the path-inserted forms a client builds from it (RFC 8414 §3.1),
 * which a proxy in front forwards unchanged.
 */
export function wellKnownRoutes(oauth: OAuthServer, upstreams: readonly UpstreamConfig[]): Router {
  const router = new Router();
  const basePath = new URL(oauth.issuer).pathname.replace(/\/$/, '');
  const metadataOf = (resource: string, name: string) => ({
    resource,
    authorization_servers: [oauth.issuer],
    // SEP-2207: offline_access is never listed as needed here; refresh tokens are the server's policy.
    // The tool scopes of the upstreams the resource reaches (`toolScopes`) are asked for by name.
    scopes_supported: [mcpScope, ...oauth.resources.toolScopesOf(resource)],
    bearer_methods_supported: ['header'],
    resource_name: name,
  });
  const serve = (metadata: object) =>
    async function protectedResourceMetadata(ctx: Context) {
      ctx.set('Access-Control-Allow-Origin', '*');
      ctx.set('Cache-Control', 'public, max-age=300');
      ctx.body = metadata;
    };
  // Path-inserted forms with and without the issuer's path: behind a proxy that strips the
  // gateway's path prefix, both reach the gateway.
  const prmPaths = (path: string) => [...new Set([`/.well-known/oauth-protected-resource${path}`, `/.well-known/oauth-protected-resource${basePath}${path}`])];
  const aggregate = serve(metadataOf(oauth.mcpResource, 'Consent Gateway'));
  for (const path of prmPaths('/mcp')) router.get(path, aggregate);
  router.get('/.well-known/oauth-protected-resource', aggregate);
  for (const upstream of upstreams) {
    const handler = serve(metadataOf(oauth.resources.of(upstream.name), `${upstream.displayName} through Consent Gateway`));
    for (const path of prmPaths(`/mcp/${upstream.name}`)) router.get(path, handler);
  }
  if (basePath) {
    for (const suffix of ['oauth-authorization-server', 'openid-configuration']) {
      router.get(`/.well-known/${suffix}${basePath}`, async function pathInsertedServerMetadata(ctx: Context, next: Next) {
        ctx.path = `/.well-known/${suffix}`;
        await next();
      });
    }
  }
  return router;
}

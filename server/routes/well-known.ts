import Router from '@koa/router';
import type { Context } from 'koa';
import type { UpstreamConfig } from '../config.js';
import { mcpScope, type OAuthServer } from '../oauth/provider.js';

/**
 * RFC 9728 Protected Resource Metadata for `/mcp` and for each upstream's own endpoint
 * `/mcp/<upstream>`, each at its path-inserted URL (§3.1); the root form answers for `/mcp`.
 */
export function wellKnownRoutes(oauth: OAuthServer, upstreams: readonly UpstreamConfig[]): Router {
  const router = new Router();
  const metadataOf = (resource: string, name: string) => ({
    resource,
    authorization_servers: [oauth.issuer],
    scopes_supported: [mcpScope],
    bearer_methods_supported: ['header'],
    resource_name: name,
  });
  const serve = (metadata: object) =>
    async function protectedResourceMetadata(ctx: Context) {
      ctx.set('Access-Control-Allow-Origin', '*');
      ctx.set('Cache-Control', 'public, max-age=300');
      ctx.body = metadata;
    };
  const aggregate = serve(metadataOf(oauth.mcpResource, 'Consent Gateway'));
  router.get('/.well-known/oauth-protected-resource/mcp', aggregate);
  router.get('/.well-known/oauth-protected-resource', aggregate);
  for (const upstream of upstreams) {
    router.get(`/.well-known/oauth-protected-resource/mcp/${upstream.name}`, serve(metadataOf(oauth.resources.of(upstream.name), `${upstream.displayName} through Consent Gateway`)));
  }
  return router;
}

import Router from '@koa/router';
import type { Context } from 'koa';
import { mcpScope, type OAuthServer } from '../oauth/provider.js';

/** RFC 9728 Protected Resource Metadata for `/mcp`, and RFC 8414 metadata beside OIDC discovery. */
export function wellKnownRoutes(oauth: OAuthServer): Router {
  const router = new Router();
  const metadata = {
    resource: oauth.mcpResource,
    authorization_servers: [oauth.issuer],
    scopes_supported: [mcpScope],
    bearer_methods_supported: ['header'],
    resource_name: 'Consent Gateway',
  };
  const protectedResource = async function protectedResourceMetadata(ctx: Context) {
    ctx.set('Access-Control-Allow-Origin', '*');
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = metadata;
  };
  // Path-inserted form (RFC 9728 §3.1) and the root form some clients try first.
  router.get('/.well-known/oauth-protected-resource/mcp', protectedResource);
  router.get('/.well-known/oauth-protected-resource', protectedResource);
  return router;
}

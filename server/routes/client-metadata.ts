import Router from '@koa/router';
import type { GatewayConfig } from '../config.js';
import { clientMetadataDocument } from '../upstream-config.js';

/** `GET /oauth/client-metadata.json`: the gateway's client ID metadata document, for upstreams that use them. */
export function clientMetadataRoutes(config: GatewayConfig): Router {
  const router = new Router();
  const document = clientMetadataDocument(config);
  router.get('/oauth/client-metadata.json', function clientMetadata(ctx) {
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = document;
  });
  return router;
}

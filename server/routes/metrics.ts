import http from 'node:http';
import Router from '@koa/router';
import { metricsRegistry } from '../metrics.js';
import { adminTokenGuard } from './admin.js';

/** `GET /metrics` on the app, in Prometheus text format, behind the admin bearer token. */
export function metricsRoutes(adminToken: string | undefined): Router {
  const router = new Router();
  router.get('/metrics', adminTokenGuard(adminToken), async function metrics(ctx) {
    ctx.type = metricsRegistry.contentType;
    ctx.body = await metricsRegistry.metrics();
  });
  return router;
}

/**
 * Serves `/metrics` on a port of its own, without a token: for deployments that keep the scrape
 * port on an internal network. Resolves once listening.
 */
export async function startMetricsServer(host: string, port: number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    metricsRegistry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metricsRegistry.contentType }).end(text),
      () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics failed\n'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import Router from '@koa/router';
import { NotFoundError } from '../errors.js';

/** `GET /assets/<name>.js(.map)`: the prebuilt web bundles, from one folder, by plain file name only. */
export function assetRoutes(dir: string): Router {
  const router = new Router();
  const cache = new Map<string, Buffer>();
  router.get('/assets/:file', async function asset(ctx) {
    const file = ctx.params.file ?? '';
    if (!/^[a-z0-9-]+\.js(\.map)?$/.test(file)) throw new NotFoundError(`no such asset: ${file}`);
    let body = cache.get(file);
    if (!body) {
      body = await readFile(path.join(dir, file)).catch(() => undefined);
      if (!body) throw new NotFoundError(`no such asset: ${file}`);
      cache.set(file, body);
    }
    ctx.type = file.endsWith('.map') ? 'application/json' : 'text/javascript';
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = body;
  });
  return router;
}

import Koa from 'koa';
import type { GatewayConfig } from './config.js';
import { NotFoundError } from './errors.js';
import type { Logger } from './log.js';
import { errorHandler } from './middleware/errors.js';
import { securityHeaders } from './middleware/security-headers.js';
import { healthRoutes, type HealthDeps } from './routes/health.js';
import { homeRoutes } from './routes/home.js';

/** What the web app needs from the running gateway. */
export interface AppDeps extends HealthDeps {
  log: Logger;
  /** The Temporal Web UI, linked from the home page when known. */
  temporalUiUrl?: string | undefined;
}

/** Builds the gateway's Koa app. */
export function createApp(config: GatewayConfig, deps: AppDeps): Koa {
  const app = new Koa();
  app.proxy = config.http.publicUrl.startsWith('https:');
  // Errors are rendered by errorHandler; Koa's default logger would print them a second time.
  app.silent = true;
  app.use(errorHandler(deps.log));
  app.use(securityHeaders());
  app.use(async function notFound(ctx, next) {
    await next();
    if (ctx.status === 404 && ctx.body == null) throw new NotFoundError(`no such endpoint: ${ctx.method} ${ctx.path}`);
  });
  for (const router of [healthRoutes(deps), homeRoutes(config, deps)]) {
    app.use(router.routes());
    app.use(router.allowedMethods({ throw: false }));
  }
  return app;
}

import Router from '@koa/router';
import type { GatewayStore } from '../store/store.js';

/** What `/healthz` reports about Temporal. */
export type TemporalHealth = { ok: true; namespace: string } | { ok: false; error: string };

/** Dependencies of the health route. */
export interface HealthDeps {
  store: GatewayStore;
  temporalHealth: () => Promise<TemporalHealth>;
  workerState?: () => string;
}

/** `GET /healthz`: 200 only when both Temporal and the store answer; 503 otherwise, with what failed. */
export function healthRoutes(deps: HealthDeps): Router {
  const router = new Router();
  router.get('/healthz', async function health(ctx) {
    const [temporal, store] = await Promise.all([
      deps.temporalHealth().catch((error: unknown): TemporalHealth => ({ ok: false, error: String(error) })),
      deps.store.health(),
    ]);
    const ok = temporal.ok && store.ok;
    ctx.status = ok ? 200 : 503;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      status: ok ? 'ok' : 'unavailable',
      temporal,
      store,
      ...(deps.workerState ? { worker: { state: deps.workerState() } } : {}),
    };
  });
  return router;
}

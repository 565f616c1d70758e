/**
 * The `/mcp` hot path: bearer token check plus grant lookup, per request, cold (a token seen for
 * the first time: the store) and warm (in-process cache), on SQLite and, where PostgreSQL's
 * binaries are found, on a PostgreSQL server the bench starts in a temporary folder.
 * Budget (DESIGN.md): ≤ 20 µs with a warm cache.
 * Run: `node --import tsx bench/hot-path.ts [--requests 20000]`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Context } from 'koa';
import { loadConfig } from '../server/config.js';
import { createLogger } from '../server/log.js';
import { bearerAuth } from '../server/middleware/bearer-auth.js';
import { createOAuthServer, mcpScope } from '../server/oauth/provider.js';
import { loadServerKeys } from '../server/oauth/server-keys.js';
import { openStore } from '../server/store/open-store.js';
import { issueAccessTokens, registerPublicClient } from '../test/helpers/issued-tokens.js';
import { findPostgresBin, startPostgresServer } from '../test/helpers/postgres-server.js';
import { fmt, percentile } from './support.js';

const requests = Number(process.argv[process.argv.indexOf('--requests') + 1]) || 20_000;
/** Tokens checked once each, for the cold figure. */
const coldTokens = 200;

async function measure(label: string, storeUrl: string | undefined): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cg-bench-hot-'));
  const config = loadConfig({ env: { GATEWAY_DATA_DIR: dir, GATEWAY_PORT: '3999', ...(storeUrl ? { GATEWAY_STORE_URL: storeUrl } : {}) } });
  config.upstreams = [{ name: 'demo', displayName: 'Demo', mcpUrl: 'http://127.0.0.1:9/mcp', auth: { type: 'none' }, scopes: [] }];
  const log = createLogger('error');
  const store = await openStore(config.store);
  const oauth = createOAuthServer(config, { store, log, keys: await loadServerKeys(config, log) });

  // A real client, grant and opaque access tokens of the gateway's OAuth server, as a consent would leave them.
  const clientId = 'bench-client';
  await registerPublicClient(store, clientId);
  const tokens = await issueAccessTokens(oauth, { userId: 'alice', clientId, resources: Array<string>(coldTokens + 1).fill(oauth.mcpResource) });
  await store.saveConsent({ userId: 'alice', clientId, upstreams: ['demo'], scopes: [mcpScope], flowId: 'bench', grantedAt: new Date().toISOString() });

  const check = bearerAuth({ oauth, store, upstreams: config.upstreams });
  async function once(token: string): Promise<number> {
    const header = `Bearer ${token}`;
    const ctx = { get: (name: string) => (name === 'authorization' ? header : ''), state: {} as Record<string, unknown> } as unknown as Context;
    const started = process.hrtime.bigint();
    await check(ctx, async () => {});
    const micros = Number(process.hrtime.bigint() - started) / 1000;
    if (!(ctx.state.caller as { userId?: string } | undefined)?.userId) throw new Error('the token was not accepted');
    return micros;
  }

  const warmToken = tokens.pop()!;
  for (let i = 0; i < 2_000; i += 1) await once(warmToken);
  const cold: number[] = [];
  for (const token of tokens) cold.push(await once(token));
  const warm: number[] = [];
  for (let i = 0; i < requests; i += 1) warm.push(await once(warmToken));
  console.log(
    `hot-path ${label}: token check + grant lookup, warm cache: p50 ${fmt(percentile(warm, 50), 2)} µs, p99 ${fmt(percentile(warm, 99), 2)} µs (budget ≤ 20 µs); cold (first check of a token) p50 ${fmt(percentile(cold, 50), 0)} µs, p99 ${fmt(percentile(cold, 99), 0)} µs; N=${requests}, ${coldTokens} cold`,
  );
  await store.close();
  await rm(dir, { recursive: true, force: true });
}

const postgresBin = findPostgresBin();
if (postgresBin) {
  const server = await startPostgresServer(postgresBin);
  try {
    await measure('PostgreSQL', server.url);
  } finally {
    await server.stop();
  }
} else {
  console.log('hot-path PostgreSQL: skipped (no initdb and pg_ctl found; Debian: apt-get install postgresql)');
}
// Last, so that `npm run bench` shows the embedded default's figure as this benchmark's summary.
await measure('SQLite', undefined);

/**
 * The `/mcp` hot path: bearer token check plus grant lookup, per request, cold (store) and warm
 * (in-process cache). Budget (DESIGN.md): ≤ 50 µs with a warm cache.
 * Run: `node --import tsx bench/hot-path.ts [--requests 20000]`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Context } from 'koa';
import { loadConfig } from '../server/config.js';
import { createLogger } from '../server/log.js';
import { bearerAuth } from '../server/middleware/bearer-auth.js';
import { createOAuthServer, loadServerKeys, mcpScope } from '../server/oauth/provider.js';
import { openStore } from '../server/store/open-store.js';
import { fmt, percentile } from './support.js';

const requests = Number(process.argv[process.argv.indexOf('--requests') + 1]) || 20_000;
const dir = await mkdtemp(path.join(tmpdir(), 'cg-bench-hot-'));
const config = loadConfig({ env: { GATEWAY_DATA_DIR: dir, GATEWAY_PORT: '3999' } });
config.upstreams = [{ name: 'demo', displayName: 'Demo', mcpUrl: 'http://127.0.0.1:9/mcp', auth: 'none', scopes: [] }];
const log = createLogger('error');
const store = await openStore(config.store);
const oauth = createOAuthServer(config, { store, log, keys: await loadServerKeys(config, log) });
const provider = oauth.provider as unknown as {
  Grant: new (init: { accountId: string; clientId: string }) => { addResourceScope(r: string, s: string): void; save(): Promise<string> };
  AccessToken: new (init: Record<string, unknown>) => { save(): Promise<string> };
  Client: { find(id: string): Promise<unknown> };
};

// A real client, grant and opaque access token of the gateway's OAuth server, as a consent would leave them.
const clientId = 'bench-client';
await store.oauth.upsert('Client', clientId, {
  payload: JSON.stringify({ client_id: clientId, redirect_uris: ['http://127.0.0.1:1/cb'], token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], id_token_signed_response_alg: 'ES256' }),
  expiresAt: null,
  grantId: null,
  sessionUid: null,
  userCode: null,
});
const grant = new provider.Grant({ accountId: 'alice', clientId });
grant.addResourceScope(oauth.mcpResource, mcpScope);
const grantId = await grant.save();
const client = await provider.Client.find(clientId);
const token = await new provider.AccessToken({ accountId: 'alice', client, grantId, scope: mcpScope, aud: oauth.mcpResource, expiresIn: 3600, resourceServer: { audience: oauth.mcpResource, scope: mcpScope, accessTokenFormat: 'opaque' } }).save();
await store.saveConsent({ userId: 'alice', clientId, upstreams: ['demo'], scopes: [mcpScope], flowId: 'bench', grantedAt: new Date().toISOString() });

const check = bearerAuth({ oauth, store, upstreams: config.upstreams });
const header = `Bearer ${token}`;
async function once(): Promise<number> {
  const ctx = { get: (name: string) => (name === 'authorization' ? header : ''), state: {} as Record<string, unknown> } as unknown as Context;
  const started = process.hrtime.bigint();
  await check(ctx, async () => {});
  const micros = Number(process.hrtime.bigint() - started) / 1000;
  if (!(ctx.state.caller as { userId?: string } | undefined)?.userId) throw new Error('the token was not accepted');
  return micros;
}

const cold = await once();
for (let i = 0; i < 2_000; i += 1) await once();
const warm: number[] = [];
for (let i = 0; i < requests; i += 1) warm.push(await once());
console.log(`hot-path: cold (store) ${fmt(cold, 0)} µs`);
console.log(
  `hot-path: token check + grant lookup, warm cache: p50 ${fmt(percentile(warm, 50), 2)} µs, p99 ${fmt(percentile(warm, 99), 2)} µs (budget ≤ 50 µs), cold ${fmt(cold, 0)} µs, N=${requests}`,
);
await store.close();
await rm(dir, { recursive: true, force: true });

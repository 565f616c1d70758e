import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig, type GatewayConfig } from '../../server/config.js';
import { createLogger } from '../../server/log.js';
import { createOAuthServer } from '../../server/oauth/provider.js';
import { loadServerKeys } from '../../server/oauth/server-keys.js';
import { openStore } from '../../server/store/open-store.js';
import type { GatewayStore } from '../../server/store/store.js';
import { freePort } from './free-port.js';

/** The gateway's OAuth server alone on loopback (no Temporal, no consent pages), over a fresh store. */
export interface TestOAuthServer {
  issuer: string;
  config: GatewayConfig;
  store: GatewayStore;
  close(): Promise<void>;
}

/** Starts a {@link TestOAuthServer}; `storeUrl` picks PostgreSQL, `configure` adjusts the config first. */
export async function startOAuthServer(options: { storeUrl?: string; configure?: (config: GatewayConfig) => void } = {}): Promise<TestOAuthServer> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cg-oauth-'));
  const config = loadConfig({ env: { GATEWAY_DATA_DIR: dir, GATEWAY_PORT: String(await freePort()), ...(options.storeUrl ? { GATEWAY_STORE_URL: options.storeUrl } : {}) } });
  options.configure?.(config);
  const log = createLogger('error');
  const store = await openStore(config.store);
  const oauth = createOAuthServer(config, { store, log, keys: await loadServerKeys(config, log) });
  const server: Server = createServer(oauth.provider.callback());
  await new Promise<void>((resolve) => server.listen(config.http.port, '127.0.0.1', resolve));
  return {
    issuer: oauth.issuer,
    config,
    store,
    async close() {
      await new Promise((resolve) => server.close(resolve));
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

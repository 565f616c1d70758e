import type { StoreConfig } from '../config.js';
import { SqliteStore } from './sqlite-store.js';
import type { GatewayStore } from './store.js';

/**
 * Opens the configured store and brings its schema up to date: the SQLite file of the embedded
 * default, or a PostgreSQL database for a fleet. Every process of a deployment opens the store
 * through here, so they all agree on the backend.
 */
export async function openStore(config: StoreConfig): Promise<GatewayStore> {
  if (config.backend === 'sqlite') return SqliteStore.open(config.path);
  // Loaded on demand: the embedded default never loads the PostgreSQL driver.
  const { PostgresStore } = await import('./postgres-store.js');
  return PostgresStore.open(config.url, { poolSize: config.poolSize });
}

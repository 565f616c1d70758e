import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type GatewayConfig } from '../../../server/config.js';
import { createLogger } from '../../../server/log.js';
import { createOAuthServer } from '../../../server/oauth/provider.js';
import { loadServerKeys } from '../../../server/oauth/server-keys.js';
import { openStore } from '../../../server/store/open-store.js';
import type { GatewayStore } from '../../../server/store/store.js';
import { freePort } from '../../helpers/free-port.js';
import { createTestDatabase, postgresUnavailable } from '../../helpers/postgres.js';
import { storedText } from '../../helpers/stored-text.js';

describe.each([
  { backend: 'sqlite', skip: false },
  { backend: 'postgres', skip: Boolean(postgresUnavailable) },
])('a confidential client registered dynamically ($backend)', ({ backend, skip }) => {
  let dir: string;
  let config: GatewayConfig;
  let store: GatewayStore;
  let server: Server;
  let issuer: string;

  beforeAll(async () => {
    if (skip) return;
    dir = await mkdtemp(path.join(tmpdir(), 'cg-client-secret-'));
    config = loadConfig({
      env: { GATEWAY_DATA_DIR: dir, GATEWAY_PORT: String(await freePort()), ...(backend === 'postgres' ? { GATEWAY_STORE_URL: await createTestDatabase() } : {}) },
    });
    const log = createLogger('error');
    store = await openStore(config.store);
    const oauth = createOAuthServer(config, { store, log, keys: await loadServerKeys(config, log) });
    issuer = oauth.issuer;
    server = createServer(oauth.provider.callback());
    await new Promise<void>((resolve) => server.listen(config.http.port, '127.0.0.1', resolve));
  });

  afterAll(async () => {
    if (skip) return;
    await new Promise((resolve) => server.close(resolve));
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function register(method: 'client_secret_basic' | 'client_secret_post'): Promise<{ client_id: string; client_secret: string }> {
    const response = await fetch(`${issuer}/reg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: 'Confidential', redirect_uris: ['http://127.0.0.1:9/callback'], token_endpoint_auth_method: method }),
    });
    expect(response.status).toBe(201);
    const body = (await response.json()) as { client_id: string; client_secret: string; token_endpoint_auth_method: string };
    expect(body.token_endpoint_auth_method).toBe(method);
    expect(body.client_secret).toMatch(/^[\w-]{32,}$/);
    return body;
  }

  /** A refresh request with a made-up token: `invalid_grant` once the client authenticated, `invalid_client` otherwise. */
  async function tokenRequest(client: { client_id: string }, secret: string, method: 'client_secret_basic' | 'client_secret_post') {
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'made-up-refresh-token' });
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
    if (method === 'client_secret_basic') {
      headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(client.client_id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
    } else {
      form.set('client_id', client.client_id);
      form.set('client_secret', secret);
    }
    const response = await fetch(`${issuer}/token`, { method: 'POST', headers, body: form });
    return { status: response.status, body: (await response.json()) as { error: string } };
  }

  it.skipIf(skip).each(['client_secret_basic', 'client_secret_post'] as const)('keeps no %s secret in the store, and still authenticates with it', async (method) => {
    const client = await register(method);
    expect(await storedText(config.store)).toContain(client.client_id);
    expect(await storedText(config.store)).not.toContain(client.client_secret);

    expect(await tokenRequest(client, client.client_secret, method)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect(await tokenRequest(client, `wrong-${client.client_secret}`, method)).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
  });
});

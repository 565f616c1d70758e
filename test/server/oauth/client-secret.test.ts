import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayConfig } from '../../../server/config.js';
import { startOAuthServer, type TestOAuthServer } from '../../helpers/oauth-server.js';
import { createTestDatabase, postgresUnavailable } from '../../helpers/postgres.js';
import { storedText } from '../../helpers/stored-text.js';

describe.each([
  { backend: 'sqlite', skip: false },
  { backend: 'postgres', skip: Boolean(postgresUnavailable) },
])('a confidential client registered dynamically ($backend)', ({ backend, skip }) => {
  let oauth: TestOAuthServer;
  let config: GatewayConfig;
  let issuer: string;

  beforeAll(async () => {
    if (skip) return;
    oauth = await startOAuthServer(backend === 'postgres' ? { storeUrl: await createTestDatabase() } : {});
    ({ config, issuer } = oauth);
  });

  afterAll(async () => {
    if (!skip) await oauth.close();
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

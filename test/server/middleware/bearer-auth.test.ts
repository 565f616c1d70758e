import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Context } from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../server/config.js';
import { OAuthError } from '../../../server/errors.js';
import { createLogger } from '../../../server/log.js';
import { bearerAuth } from '../../../server/middleware/bearer-auth.js';
import { createOAuthServer, mcpScope, type OAuthServer } from '../../../server/oauth/provider.js';
import { loadServerKeys } from '../../../server/oauth/server-keys.js';
import { openStore } from '../../../server/store/open-store.js';
import type { GatewayStore } from '../../../server/store/store.js';
import { issueAccessTokens, registerPublicClient } from '../../helpers/issued-tokens.js';

describe('the bearer check on /mcp', () => {
  let dir: string;
  let store: GatewayStore;
  let oauth: OAuthServer;
  const clientId = 'scoped-client';

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-bearer-'));
    const config = loadConfig({ env: { GATEWAY_DATA_DIR: dir, GATEWAY_PORT: '3997' } });
    const log = createLogger('error');
    store = await openStore(config.store);
    oauth = createOAuthServer(config, { store, log, keys: await loadServerKeys(config, log) });
    await registerPublicClient(store, clientId);
    await store.saveConsent({ userId: 'alice', clientId, upstreams: [], scopes: [mcpScope], flowId: 'f', grantedAt: new Date().toISOString() });
  });

  afterAll(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Issues a real opaque access token of the gateway's OAuth server with the given scope. */
  async function token(scope: string): Promise<string> {
    const [issued] = await issueAccessTokens(oauth, { userId: 'alice', clientId, resources: [oauth.mcpResource], scope, expiresIn: 600 });
    return issued!;
  }

  async function check(value: string): Promise<{ error?: OAuthError; caller?: unknown }> {
    const state: Record<string, unknown> = {};
    const ctx = { get: (name: string) => (name === 'authorization' ? `Bearer ${value}` : ''), state } as unknown as Context;
    try {
      await bearerAuth({ oauth, store, upstreams: [] })(ctx, async () => {});
      return { caller: state.caller };
    } catch (error) {
      return { error: error as OAuthError };
    }
  }

  it('accepts a token with the MCP scope and names its user and client', async () => {
    expect((await check(await token(mcpScope))).caller).toEqual({ userId: 'alice', clientId, upstreams: [] });
  });

  it('answers 403 insufficient_scope with a challenge for a token without the MCP scope', async () => {
    const { error } = await check(await token(''));
    expect(error).toBeInstanceOf(OAuthError);
    expect(error?.status).toBe(403);
    expect(error?.errorCode).toBe('insufficient_scope');
    expect(error?.headers['WWW-Authenticate']).toBe(
      `Bearer resource_metadata="${oauth.issuer}/.well-known/oauth-protected-resource/mcp", scope="mcp:tools", error="insufficient_scope", error_description="the access token lacks the mcp:tools scope"`,
    );
  });

  it('answers 401 invalid_token once the user no longer consents to the client', async () => {
    const value = await token(mcpScope);
    await store.deleteConsent('alice', clientId);
    const { error } = await check(value);
    expect(error?.status).toBe(401);
    expect(error?.message).toBe('the user no longer consents to this client');
    await store.saveConsent({ userId: 'alice', clientId, upstreams: [], scopes: [mcpScope], flowId: 'f', grantedAt: new Date().toISOString() });
  });
});

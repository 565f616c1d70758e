import type { UpstreamTokenStatus } from '../../server/store/store.js';
import { createGrants, type UpstreamOAuthDeps } from './grants.js';

export type { UpstreamConnection, UpstreamOAuthDeps, UpstreamTokenMetadata } from './grants.js';
export type { Sealer, UpstreamClientSettings } from './client-auth.js';
export type { UpstreamOAuthSettings, UpstreamSettings } from './discovery.js';

/**
 * The upstream OAuth activities, under the names the worker registers and recorded histories
 * replay: discovery (RFC 9728, RFC 8414, OIDC) and the gateway's client there (`discovery.ts`,
 * `client-auth.ts`), the grants (`grants.ts`), and the token records' upkeep.
 */
export function createUpstreamOAuth(deps: UpstreamOAuthDeps) {
  return {
    ...createGrants(deps),

    /** Deletes a user's tokens for an upstream from the store. */
    async deleteUpstreamTokens(input: { userId: string; upstream: string }): Promise<{ deleted: boolean }> {
      return { deleted: await deps.store.deleteUpstreamTokens(input.userId, input.upstream) };
    },

    /**
     * Records the scopes an upstream asked for (`insufficient_scope`, step-up) on the user's tokens,
     * so the next authorization there asks for them as well (SEP-2350 scope accumulation).
     */
    async requireUpstreamScopes(input: { userId: string; upstream: string; scopes: string[] }): Promise<{ recorded: boolean }> {
      const current = await deps.store.getUpstreamTokens(input.userId, input.upstream);
      if (!current) return { recorded: false };
      const requiredScopes = [...new Set([...(current.requiredScopes ?? []), ...input.scopes])];
      await deps.store.saveUpstreamTokens({ ...current, requiredScopes, updatedAt: new Date().toISOString() });
      return { recorded: true };
    },

    /** Records where a user stands with an upstream (`needs_reconnect`, ...) in the read model. */
    async setUpstreamTokenStatus(input: { userId: string; upstream: string; status: UpstreamTokenStatus }): Promise<void> {
      await deps.store.setUpstreamTokenStatus(input.userId, input.upstream, input.status, new Date().toISOString());
    },
  };
}

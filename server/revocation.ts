import type { Client } from '@temporalio/client';
import type Provider from 'oidc-provider';
import type { AuditRecorder } from './audit/audit-log.js';
import type { Logger } from './log.js';
import type { ConsentStore, OAuthModels, UpstreamTokenStore } from './store/store.js';
import { disconnectUpstreamGrant } from './temporal/client.js';
import { upstreamGrantWorkflowId } from '../workflows/upstream-grant/messages.js';

/** Who asked for a revocation, for the audit trail. */
export interface RevocationActor {
  /** `user` (My connections) or `admin` (the admin API). */
  actor: 'user' | 'admin';
  sourceIp: string | null;
}

/** What revoking and disconnecting need; shared by My connections and the admin API. */
export interface RevocationDeps {
  provider: Provider;
  store: ConsentStore & OAuthModels & UpstreamTokenStore;
  /** Drops the bearer check's cached answers for one user and client (in every process). */
  forgetConsent(userId: string, clientId: string): void;
  temporal: Client;
  taskQueue: string;
  log: Logger;
  audit: AuditRecorder;
}

/**
 * Ends every grant a user gave a client, with its access and refresh tokens and codes (RFC 7009
 * §2.2), and forgets the remembered consent. False when there was nothing to revoke.
 */
export async function revokeClientOfUser(deps: RevocationDeps, userId: string, clientId: string, by: RevocationActor): Promise<boolean> {
  const grantIds = await deps.store.oauth.listGrantIds(userId, clientId, Math.floor(Date.now() / 1000));
  for (const grantId of grantIds) {
    await deps.provider.AccessToken.revokeByGrantId(grantId);
    await deps.provider.RefreshToken.revokeByGrantId(grantId);
    await deps.provider.AuthorizationCode.revokeByGrantId(grantId);
    const grant = await deps.provider.Grant.find(grantId);
    await grant?.destroy();
  }
  const forgotten = await deps.store.deleteConsent(userId, clientId);
  deps.forgetConsent(userId, clientId);
  const revoked = forgotten || grantIds.length > 0;
  if (revoked) await deps.audit.record({ kind: 'consent.revoked', userId, clientId, sourceIp: by.sourceIp, actor: by.actor });
  return revoked;
}

/**
 * Ends a user's connection to an upstream through its `upstreamGrant` workflow, the one writer of
 * those tokens: it revokes them at the upstream (RFC 7009) when it can, and deletes them. False
 * when there was nothing to disconnect.
 */
export async function disconnectUserUpstream(deps: RevocationDeps, userId: string, upstream: string, by: RevocationActor): Promise<boolean> {
  const tokens = await deps.store.getUpstreamTokens(userId, upstream);
  if (!tokens) return false;
  const done = await disconnectUpstreamGrant(deps.temporal, deps.taskQueue, {
    userId,
    upstream,
    version: tokens.version,
    expiresAt: tokens.expiresAt,
    refreshable: tokens.refreshToken !== null,
  });
  if (!done) deps.log.warn('disconnect still running at the upstream', { user: userId, upstream });
  await deps.audit.record({
    kind: 'upstream.disconnected',
    userId,
    upstream,
    flowId: upstreamGrantWorkflowId(userId, upstream),
    outcome: done ? 'ok' : 'pending',
    sourceIp: by.sourceIp,
    actor: by.actor,
  });
  return true;
}

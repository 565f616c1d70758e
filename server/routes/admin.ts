import { createHash, timingSafeEqual } from 'node:crypto';
import Router from '@koa/router';
import type { Client } from '@temporalio/client';
import type { Context, Next } from 'koa';
import { consentWorkflowId, searchAttributes } from '../../workflows/consent-flow/messages.js';
import { openStatuses } from '../../workflows/consent-flow/steps.js';
import { upstreamGrantWorkflowId } from '../../workflows/upstream-grant/messages.js';
import type { AuditRecorder } from '../audit/audit-log.js';
import type { GatewayConfig } from '../config.js';
import { AccessDeniedError, InvalidRequestError, InvalidTokenError } from '../errors.js';
import { disconnectUserUpstream, revokeClientOfUser, type RevocationActor, type RevocationDeps } from '../revocation.js';
import { plainText } from './request-text.js';
import { auditKinds, type AdminDirectory, type AuditKind, type AuditQuery, type AuditTrail, type GatewayStore } from '../store/store.js';

/** What the admin API needs. */
export interface AdminRouteDeps {
  config: GatewayConfig;
  store: GatewayStore;
  temporal: Client;
  audit: AuditRecorder;
  revocation: RevocationDeps;
  /** The Temporal Web UI's base URL (`http://localhost:8233`), when known: every flow and grant links there. */
  temporalUiUrl?: string | undefined;
}

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * Accepts a request only with `Authorization: Bearer <admin token>` (RFC 6750 §2.1). The two
 * values are hashed first so the comparison takes the same time whatever their lengths.
 * Without a configured token everything is refused.
 */
export function adminTokenGuard(token: string | undefined) {
  const expected = token === undefined ? undefined : digest(token);
  return async function requireAdminToken(ctx: Context, next: Next): Promise<void> {
    ctx.set('Cache-Control', 'no-store');
    if (!expected) throw new AccessDeniedError('the admin API is off: set admin.token (GATEWAY_ADMIN_TOKEN)');
    const match = /^Bearer ([\x21-\x7e]+)$/.exec(ctx.get('authorization'));
    if (!match || !timingSafeEqual(digest(match[1] ?? ''), expected)) {
      throw new InvalidTokenError('the admin API needs the admin bearer token', { headers: { 'WWW-Authenticate': 'Bearer realm="consent-gateway-admin"' } });
    }
    await next();
  };
}

function queryText(ctx: Context, name: string, max = 512): string | undefined {
  const value = ctx.query[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > max) throw new InvalidRequestError(`${name} must be one non-empty value of at most ${max} characters`);
  return plainText(name, value);
}

function queryTime(ctx: Context, name: string): string | undefined {
  const value = queryText(ctx, name, 64);
  if (value === undefined) return undefined;
  const time = new Date(value);
  if (Number.isNaN(time.getTime())) throw new InvalidRequestError(`${name} must be an ISO 8601 time`);
  return time.toISOString();
}

function queryCount(ctx: Context, name: string, fallback: number, max: number, min = 1): number {
  const value = queryText(ctx, name, 12);
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new InvalidRequestError(`${name} must be a whole number from ${min} to ${max}`);
  return n;
}

/** Reads the filters of `GET /admin/audit`; the cursor is the last id of the previous page. */
export function auditQueryOf(ctx: Context): AuditQuery {
  const kind = queryText(ctx, 'kind', 64);
  if (kind !== undefined && !auditKinds.includes(kind as AuditKind)) throw new InvalidRequestError(`kind must be one of ${auditKinds.join(', ')}`);
  const cursor = queryText(ctx, 'cursor', 20);
  if (cursor !== undefined && !/^[1-9][0-9]{0,15}$/.test(cursor)) throw new InvalidRequestError('cursor must be the nextCursor of an earlier page');
  const query: AuditQuery = { limit: queryCount(ctx, 'limit', 100, 1000) };
  const user = queryText(ctx, 'user');
  const client = queryText(ctx, 'client', 2048);
  const upstream = queryText(ctx, 'upstream');
  const since = queryTime(ctx, 'since');
  const until = queryTime(ctx, 'until');
  if (user !== undefined) query.userId = user;
  if (client !== undefined) query.clientId = client;
  if (upstream !== undefined) query.upstream = upstream;
  if (kind !== undefined) query.kind = kind as AuditKind;
  if (since !== undefined) query.since = since;
  if (until !== undefined) query.until = until;
  if (cursor !== undefined) query.before = Number(cursor);
  return query;
}

/** One page of the audit trail and the cursor of the next (null on the last page). */
export async function auditPage(store: AuditTrail, query: AuditQuery) {
  const entries = await store.queryAudit(query);
  const last = entries.at(-1);
  return { entries, nextCursor: entries.length === query.limit && last ? String(last.id) : null };
}

const listLimit = 10_000;

/**
 * The admin API (`/admin/*`, README "Operating"), behind the admin bearer token: the audit trail,
 * users, clients, connections and consents, stuck consent flows, and revoking a client or a user
 * everywhere. Each flow and grant carries its Temporal Web UI link. Every change is audited.
 */
export function adminRoutes(deps: AdminRouteDeps): Router {
  const { config, store, temporal } = deps;
  const router = new Router({ prefix: '/admin' });
  const namespace = config.temporal.namespace;
  const uiLink = (workflowId: string) =>
    deps.temporalUiUrl ? `${deps.temporalUiUrl}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}` : null;
  const admin = (ctx: Context): RevocationActor => ({ actor: 'admin', sourceIp: ctx.ip || null });
  const directory: AdminDirectory = store;

  router.use(adminTokenGuard(config.operations.adminToken));

  router.get('/audit', async function getAudit(ctx) {
    ctx.body = await auditPage(store, auditQueryOf(ctx));
  });

  const connectionView = (connection: Awaited<ReturnType<AdminDirectory['listUpstreamConnections']>>[number]) => {
    const workflowId = upstreamGrantWorkflowId(connection.userId, connection.upstream);
    return { ...connection, workflowId, temporalUrl: uiLink(workflowId) };
  };
  const consentView = (consent: Awaited<ReturnType<AdminDirectory['listAllConsents']>>[number]) => {
    const workflowId = consentWorkflowId(consent.flowId);
    return { ...consent, workflowId, temporalUrl: uiLink(workflowId) };
  };

  router.get('/users', async function getUsers(ctx) {
    const [consents, connections] = await Promise.all([directory.listAllConsents(listLimit), directory.listUpstreamConnections(listLimit)]);
    const users = new Map<string, { userId: string; clients: number; connections: number; needsReconnect: number }>();
    const of = (userId: string) => users.get(userId) ?? users.set(userId, { userId, clients: 0, connections: 0, needsReconnect: 0 }).get(userId)!;
    for (const consent of consents) of(consent.userId).clients += 1;
    for (const connection of connections) {
      const user = of(connection.userId);
      user.connections += 1;
      if (connection.status === 'needs_reconnect') user.needsReconnect += 1;
    }
    ctx.body = { users: [...users.values()].sort((a, b) => a.userId.localeCompare(b.userId)) };
  });

  router.get('/users/:user', async function getUser(ctx) {
    const userId = plainText('user', ctx.params.user ?? '');
    const [consents, connections] = await Promise.all([store.listConsents(userId), directory.listUpstreamConnections(listLimit, userId)]);
    ctx.body = { userId, consents: consents.map(consentView), connections: connections.map(connectionView) };
  });

  router.get('/clients', async function getClients(ctx) {
    const [registered, consents] = await Promise.all([directory.listRegisteredClients(listLimit), directory.listAllConsents(listLimit)]);
    const users = new Map<string, number>();
    for (const consent of consents) users.set(consent.clientId, (users.get(consent.clientId) ?? 0) + 1);
    const clients = [
      ...config.clients.map((client) => ({ clientId: client.clientId, clientName: client.clientName ?? null, redirectUris: client.redirectUris, registration: 'static' })),
      ...registered.map((client) => ({ ...client, registration: 'dcr' })),
    ];
    const known = new Set(clients.map((client) => client.clientId));
    // Client ID metadata documents are not stored as registrations; their consents still name them.
    for (const clientId of users.keys()) if (!known.has(clientId)) clients.push({ clientId, clientName: null, redirectUris: [], registration: 'cimd' });
    ctx.body = { clients: clients.map((client) => ({ ...client, users: users.get(client.clientId) ?? 0 })) };
  });

  router.get('/connections', async function getConnections(ctx) {
    const status = queryText(ctx, 'status', 32);
    const connections = await directory.listUpstreamConnections(listLimit);
    ctx.body = { connections: connections.filter((connection) => status === undefined || connection.status === status).map(connectionView) };
  });

  router.get('/flows/stuck', async function getStuckFlows(ctx) {
    const minutes = queryCount(ctx, 'minutes', 10, 60 * 24 * 365, 0);
    const status = queryText(ctx, 'status', 32);
    if (status !== undefined && !(openStatuses as readonly string[]).includes(status)) {
      throw new InvalidRequestError(`status must be one of ${openStatuses.join(', ')}`);
    }
    const query = stuckFlowsQuery(new Date(Date.now() - minutes * 60_000), status);
    const flows = [];
    for await (const execution of temporal.workflow.list({ query })) {
      const attribute = <T>(key: { name: string }) => (execution.searchAttributes?.[key.name] as T[] | undefined)?.[0];
      flows.push({
        workflowId: execution.workflowId,
        status: attribute<string>(searchAttributes.status) ?? null,
        userId: attribute<string>(searchAttributes.userId) ?? null,
        clientId: attribute<string>(searchAttributes.clientId) ?? null,
        startedAt: execution.startTime.toISOString(),
        temporalUrl: uiLink(execution.workflowId),
      });
      if (flows.length >= 1000) break;
    }
    ctx.body = { query, flows };
  });

  router.post('/clients/:client/revoke', async function postRevokeClient(ctx) {
    const clientId = plainText('client', ctx.params.client ?? '');
    const users = new Set(await directory.listGrantUsers(clientId, Math.floor(Date.now() / 1000)));
    for (const consent of await directory.listAllConsents(listLimit)) if (consent.clientId === clientId) users.add(consent.userId);
    const revoked: string[] = [];
    for (const userId of users) if (await revokeClientOfUser(deps.revocation, userId, clientId, admin(ctx))) revoked.push(userId);
    await deps.audit.record({ kind: 'admin.revoke_client', clientId, outcome: revoked.length ? 'ok' : 'nothing_to_revoke', sourceIp: admin(ctx).sourceIp, actor: 'admin' });
    ctx.body = { clientId, revokedUsers: revoked };
  });

  router.post('/users/:user/revoke', async function postRevokeUser(ctx) {
    const userId = plainText('user', ctx.params.user ?? '');
    const clients = new Set(await directory.listGrantClients(userId, Math.floor(Date.now() / 1000)));
    for (const consent of await store.listConsents(userId)) clients.add(consent.clientId);
    const revokedClients: string[] = [];
    for (const clientId of clients) if (await revokeClientOfUser(deps.revocation, userId, clientId, admin(ctx))) revokedClients.push(clientId);
    const disconnected: string[] = [];
    for (const connection of await directory.listUpstreamConnections(listLimit, userId)) {
      if (await disconnectUserUpstream(deps.revocation, userId, connection.upstream, admin(ctx))) disconnected.push(connection.upstream);
    }
    const outcome = revokedClients.length || disconnected.length ? 'ok' : 'nothing_to_revoke';
    await deps.audit.record({ kind: 'admin.revoke_user', userId, outcome, sourceIp: admin(ctx).sourceIp, actor: 'admin' });
    ctx.body = { userId, revokedClients, disconnectedUpstreams: disconnected };
  });

  return router;
}

/**
 * The Temporal visibility query for consent flows still running and started before `before`: the
 * same text works in the Web UI's search box (README, "Operating").
 */
export function stuckFlowsQuery(before: Date, status?: string): string {
  const statuses = status ? [status] : openStatuses;
  return `WorkflowType = "consentFlow" AND ExecutionStatus = "Running" AND ${searchAttributes.status.name} IN (${statuses.map((s) => `"${s}"`).join(', ')}) AND StartTime < "${before.toISOString()}"`;
}

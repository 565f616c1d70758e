import { randomBytes } from 'node:crypto';
import Router from '@koa/router';
import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import type { ConnectionClientView, ConnectionsView, ConnectionUpstreamView } from '../views/connections.js';
import type { Client } from '@temporalio/client';
import { needsUserConnection, type GatewayConfig, type UpstreamConfig } from '../config.js';
import { InvalidRequestError, LoginRequiredError, NotFoundError } from '../errors.js';
import type { AuditRecorder } from '../audit/audit-log.js';
import type { Logger } from '../log.js';
import type { OAuthServer } from '../oauth/provider.js';
import type { GatewayStore } from '../store/store.js';
import { disconnectUserUpstream, revokeClientOfUser, type RevocationActor, type RevocationDeps } from '../revocation.js';
import { upstreamConnectionStatus } from '../upstream-status.js';
import { escapeHtml } from '../html.js';
import type { BrowserBinding } from '../middleware/browser-binding.js';
import { readJsonBody } from '../middleware/json-body.js';
import { plainText } from './request-text.js';

/**
 * The client id recorded on a connect link that "My connections" made for itself: the page the
 * upstream's callback ends on leads back there instead of to an application.
 */
export const MY_CONNECTIONS_CLIENT_ID = 'my-connections';

/** What the "My connections" routes need. */
export interface ConnectionsRouteDeps {
  config: GatewayConfig;
  oauth: OAuthServer;
  store: GatewayStore;
  log: Logger;
  /** Checks the CSRF token (bound to the OAuth session) of the page's POSTs. */
  binding: BrowserBinding;
  /** Drops the bearer check's cached answers for one user and client. */
  forgetConsent(userId: string, clientId: string): void;
  temporal: Client;
  audit: AuditRecorder;
}

/** The signed-in browser: its user and the session id its CSRF token is bound to. */
interface SignedIn {
  userId: string;
  sessionId: string;
}

const pageCsp = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'";
const jsonBodyLimit = 1024;

/**
 * "My connections" (`/connections`): the signed-in user's upstream connections and approved MCP
 * clients, with Revoke, Connect, Disconnect and Reconnect. The user is the one of the gateway's OAuth
 * session (the `cg_session` cookie a finished consent flow leaves). Its JSON API lives under
 * `/connections/api`; POSTs need the page's CSRF token (bound to the session), JSON and this origin.
 */
export function connectionsRoutes(deps: ConnectionsRouteDeps): Router {
  const { config, oauth, store, log } = deps;
  const provider: Provider = oauth.provider;
  const router = new Router({ prefix: '/connections' });
  const csrfSubject = (sessionId: string) => `connections.${sessionId}`;

  async function signedIn(ctx: Context): Promise<SignedIn | undefined> {
    const session = await provider.Session.get(ctx);
    return session.accountId ? { userId: session.accountId, sessionId: session.jti } : undefined;
  }

  async function requireSignedIn(ctx: Context): Promise<SignedIn> {
    const user = await signedIn(ctx);
    if (!user) throw new LoginRequiredError('sign in through an MCP client first');
    return user;
  }

  /** A POST's checks: a signed-in browser, its CSRF token, and a JSON body (no form posts), though the POSTs carry no parameters. */
  async function acceptPost(ctx: Context): Promise<SignedIn> {
    const user = await requireSignedIn(ctx);
    deps.binding.checkPost(ctx, csrfSubject(user.sessionId));
    await readJsonBody(ctx, { limit: jsonBodyLimit });
    return user;
  }

  function findUpstream(name: string | undefined): UpstreamConfig {
    const upstream = config.upstreams.find((candidate) => candidate.name === name);
    if (!upstream) throw new NotFoundError('no such service');
    if (!needsUserConnection(upstream.auth)) throw new InvalidRequestError(`${upstream.displayName} needs no connection`);
    return upstream;
  }

  async function clientName(clientId: string): Promise<string | null> {
    // A client id metadata document's id is its URL; looking it up would fetch it on every page view.
    if (/^https?:\/\//.test(clientId)) return null;
    const client = await provider.Client.find(clientId).catch(() => undefined);
    return client?.clientName ?? null;
  }

  async function view(userId: string, notice: string | null = null): Promise<ConnectionsView> {
    const [tokens, consents] = await Promise.all([store.listUpstreamTokens(userId), store.listConsents(userId)]);
    const upstreams = config.upstreams.map((upstream): ConnectionUpstreamView => {
      const record = tokens.find((candidate) => candidate.upstream === upstream.name);
      return {
        name: upstream.name,
        displayName: upstream.displayName,
        status: upstreamConnectionStatus(upstream, record),
        scopes: record?.scopes ?? upstream.scopes,
        connectedAt: record?.connectedAt ?? null,
        lastUsedAt: record?.lastUsedAt ?? null,
        authRequired: needsUserConnection(upstream.auth),
      };
    });
    const clients = await Promise.all(
      consents.map(
        async (consent): Promise<ConnectionClientView> => ({
          clientId: consent.clientId,
          clientName: await clientName(consent.clientId),
          upstreams: consent.upstreams,
          scopes: consent.scopes,
          grantedAt: consent.grantedAt,
        }),
      ),
    );
    return { user: { id: userId }, upstreams, clients, notice };
  }

  const revocation: RevocationDeps = {
    provider,
    store,
    forgetConsent: deps.forgetConsent,
    temporal: deps.temporal,
    taskQueue: config.temporal.taskQueue,
    log,
    audit: deps.audit,
  };
  const byUser = (ctx: Context): RevocationActor => ({ actor: 'user', sourceIp: ctx.ip || null });

  const json = async function jsonOnly(ctx: Context, next: Next) {
    ctx.set('Cache-Control', 'no-store');
    await next();
  };

  router.get('/', async function connectionsPage(ctx) {
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Content-Security-Policy', pageCsp);
    ctx.type = 'html';
    const user = await signedIn(ctx);
    // Without a session the element explains how to sign in; it makes no API call then.
    const attributes = user ? `csrf-token="${escapeHtml(deps.binding.csrfToken(csrfSubject(user.sessionId)))}" api-base="/connections/api"` : 'signed-out';
    ctx.body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>My connections – Consent Gateway</title></head>
<body><cg-connections-page ${attributes}></cg-connections-page>
<script type="module" src="/assets/connections-page.js"></script></body></html>`;
  });

  router.get('/api', json, async function getConnections(ctx) {
    const user = await requireSignedIn(ctx);
    ctx.body = await view(user.userId);
  });

  router.post('/api/clients/:clientId/revoke', json, async function postRevoke(ctx) {
    const user = await acceptPost(ctx);
    const clientId = plainText('client id', ctx.params.clientId ?? '');
    const name = (await clientName(clientId)) ?? clientId;
    if (!(await revokeClientOfUser(revocation, user.userId, clientId, byUser(ctx)))) throw new NotFoundError('you have not approved this application');
    log.info('client revoked by user', { user: user.userId, client: clientId });
    ctx.body = await view(user.userId, `${name} can no longer use your services.`);
  });

  router.post('/api/upstreams/:name/disconnect', json, async function postDisconnect(ctx) {
    const user = await acceptPost(ctx);
    const upstream = findUpstream(ctx.params.name);
    const disconnected = await disconnectUserUpstream(revocation, user.userId, upstream.name, byUser(ctx));
    log.info('upstream disconnected by user', { user: user.userId, upstream: upstream.name });
    const notice = disconnected
      ? `${upstream.displayName} is disconnected. No application can use it until you connect it again.`
      : `${upstream.displayName} was not connected.`;
    ctx.body = await view(user.userId, notice);
  });

  // Connecting, or reconnecting, is a fresh authorization at the upstream, through the same link a
  // URL elicitation gives; a current connection stays until the new one replaces it.
  const startConnect = async function postConnect(ctx: Context) {
    const user = await acceptPost(ctx);
    const upstream = findUpstream(ctx.params.name);
    const id = randomBytes(24).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    await store.createElicitation({ id, userId: user.userId, clientId: MY_CONNECTIONS_CLIENT_ID, upstream: upstream.name, createdAt: now, expiresAt: now + 600, completedAt: null });
    log.info('upstream connect started from My connections', { user: user.userId, upstream: upstream.name });
    ctx.body = { ...(await view(user.userId)), redirectTo: `/connect?elicitationId=${id}` };
  };
  router.post('/api/upstreams/:name/connect', json, startConnect);
  router.post('/api/upstreams/:name/reconnect', json, startConnect);

  return router;
}

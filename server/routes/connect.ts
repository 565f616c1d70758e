import Router from '@koa/router';
import { WithStartWorkflowOperation, type Client } from '@temporalio/client';
import type { Context } from 'koa';
import { beginConnect, upstreamConnectFlowId, upstreamConnectWorkflowId } from '../../workflows/upstream-connect/messages.js';
import { needsUserConnection, type GatewayConfig } from '../config.js';
import type { TokenCipher } from '../crypto/token-cipher.js';
import type { Logger } from '../log.js';
import { sameText, type BrowserBinding } from '../middleware/browser-binding.js';
import { renderMessage } from '../message-page.js';
import type { OAuthServer } from '../oauth/provider.js';
import type { GatewayStore } from '../store/store.js';
import { markdownText } from '../../workflows/markdown.js';

/** What the connect link needs. */
export interface ConnectRouteDeps {
  config: GatewayConfig;
  oauth: OAuthServer;
  temporal: Client;
  store: GatewayStore;
  cipher: TokenCipher;
  log: Logger;
  /** Ties the connect to the browser that opened the link; the upstream's callback checks it. */
  binding: BrowserBinding;
}

/**
 * `GET /connect?elicitationId=…`: the link of a URL-mode elicitation (MCP 2025-11-25, SEP-1036).
 * It proceeds only in a browser signed in as the user whose call asked for it (so a link sent to
 * someone else connects nothing of theirs to that user), then runs the upstream authorization in an
 * `upstreamConnect` workflow; the upstream's callback finishes it.
 */
export function connectRoutes(deps: ConnectRouteDeps): Router {
  const { config, store, log } = deps;
  const router = new Router();

  router.get('/connect', async function connectLink(ctx: Context) {
    ctx.set('Cache-Control', 'no-store');
    const page = (status: number, title: string, sentences: string[]) => {
      ctx.status = status;
      ctx.type = 'html';
      ctx.body = renderMessage({ title, sentences });
    };
    const id = typeof ctx.query.elicitationId === 'string' ? ctx.query.elicitationId : '';
    const elicitation = /^[A-Za-z0-9_-]{16,64}$/.test(id) ? await store.getElicitation(id) : undefined;
    if (!elicitation) return page(404, 'This link is unknown', ['Go back to your application and try the action again; it will offer a new link.']);
    const now = Math.floor(Date.now() / 1000);
    if (elicitation.expiresAt <= now) return page(410, 'This link has expired', ['Go back to your application and try the action again; it will offer a new link.']);
    const upstream = config.upstreams.find((candidate) => candidate.name === elicitation.upstream);
    if (!upstream || !needsUserConnection(upstream.auth)) return page(404, 'This service is no longer offered', ['Ask your administrator.']);

    const session = await deps.oauth.provider.Session.get(ctx);
    if (!session.accountId) {
      return page(401, 'Sign in first', [`Open this link in the browser where you approved your application, so the gateway knows it is you connecting ${upstream.displayName}.`]);
    }
    if (!sameText(session.accountId, elicitation.userId)) {
      log.warn('elicitation link opened by another user', { upstream: upstream.name });
      return page(403, 'This link is for someone else', [`It was made for another user's request. Nothing was connected. If you did not expect it, ignore it.`]);
    }
    if (elicitation.completedAt !== null) return page(200, `${upstream.displayName} is connected`, ['Go back to your application: it can try again now.']);

    // Bind this connect to the browser, as consent flows are: the upstream's callback checks it.
    if (!(await deps.binding.bind(ctx, upstreamConnectFlowId(id), (elicitation.expiresAt - now) * 1000))) {
      return page(403, 'This link is open in another browser', ['Finish there, or go back to your application for a new link.']);
    }

    const startWorkflowOperation = new WithStartWorkflowOperation('upstreamConnect', {
      workflowId: upstreamConnectWorkflowId(id),
      taskQueue: config.temporal.taskQueue,
      args: [{ connectId: id, userId: elicitation.userId, upstream: upstream.name, ttlMs: (elicitation.expiresAt - now) * 1000 }],
      workflowIdConflictPolicy: 'USE_EXISTING',
      staticSummary: `Connect ${markdownText(upstream.displayName)} for ${markdownText(elicitation.userId)}`,
    });
    const state = await deps.temporal.workflow.executeUpdateWithStart(beginConnect, { startWorkflowOperation }).catch((error: unknown) => {
      log.warn('connect could not begin', { upstream: upstream.name, error: String(error) });
      return undefined;
    });
    const sealed = state?.authorizationRef ? await store.getExchangeResult(state.authorizationRef) : undefined;
    if (!state || !sealed || state.status !== 'authorizing') {
      return page(502, `${upstream.displayName} could not be reached`, [state?.message ?? 'Try the link again in a moment.']);
    }
    ctx.redirect(deps.cipher.open(sealed, state.authorizationRef!));
  });

  return router;
}

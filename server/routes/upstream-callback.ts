import { createHash } from 'node:crypto';
import Router from '@koa/router';
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import * as oauth from 'oauth4webapi';
import { consentWorkflowId, upstreamCallback } from '../../workflows/consent-flow/messages.js';
import { connectCallback, upstreamConnectWorkflowId } from '../../workflows/upstream-connect/messages.js';
import type { AuditRecorder } from '../audit/audit-log.js';
import { confirmedAuthorizationOwner } from '../authorization-owner.js';
import type { GatewayConfig } from '../config.js';
import type { TokenCipher } from '../crypto/token-cipher.js';
import type { Logger } from '../log.js';
import { renderMessage } from '../message-page.js';
import { sameText, type BrowserBinding } from '../middleware/browser-binding.js';
import type { GatewayStore, UpstreamAuthorizationRecord } from '../store/store.js';
import { signalUpstreamConnected } from '../temporal/client.js';
import { MY_CONNECTIONS_CLIENT_ID } from './connections.js';

/** What the upstream callback needs. */
export interface UpstreamCallbackDeps {
  /** Told when a connect from a URL elicitation link finished (to notify the MCP sessions). */
  mcp?: { elicitationCompleted?(userId: string, clientId: string | undefined, elicitationId: string): Promise<number> };
  /** Seals the authorization code and callback parameters for the workflow's exchange. */
  cipher: TokenCipher;
  config: GatewayConfig;
  temporal: Client;
  store: GatewayStore;
  log: Logger;
  /** The callback proceeds only in the browser the flow or connect is bound to. */
  binding: BrowserBinding;
  audit: AuditRecorder;
}

const sha256 = (value: string) => createHash('sha256').update(value).digest('base64url');

/**
 * `GET /oauth/upstream/callback`, the redirect URI at every upstream: finishes one connect attempt
 * of a consent flow (then back to its screens) or of a connect from a URL elicitation link, and
 * hands the new connection to the user's `upstreamGrant` workflow.
 */
export function upstreamCallbackRoutes(deps: UpstreamCallbackDeps): Router {
  const { config, temporal, store, log, binding: browser } = deps;
  const router = new Router();

  /**
   * Hands the new connection to the user's `upstreamGrant` workflow (token metadata only), which
   * refreshes it from now on. A failure here does not undo the connection: `/mcp` starts the grant
   * workflow later if it is missing.
   */
  async function startGrant(userId: string, upstream: string): Promise<void> {
    try {
      const tokens = await store.getUpstreamTokens(userId, upstream);
      if (!tokens) return;
      await signalUpstreamConnected(temporal, config.temporal.taskQueue, {
        userId,
        upstream,
        version: tokens.version,
        expiresAt: tokens.expiresAt,
        refreshable: tokens.refreshToken !== null,
      });
    } catch (error) {
      log.warn('could not start the grant workflow', { upstream, error: String(error) });
    }
  }

  /** Whether the authorization was completed before, within its lifetime, with this same code. */
  async function sameCompletedCallback(stateHash: string, code: string, now: number): Promise<boolean> {
    const earlier = await store.getUpstreamAuthorization(stateHash);
    if (!earlier?.code || earlier.usedAt === null || earlier.expiresAt <= now) return false;
    return sameText(deps.cipher.open(earlier.code, `upstream_authorizations:${stateHash}:code`), code);
  }

  /** The redirect URI at every upstream: finishes one connect attempt, then back to the flow. */
  router.get('/oauth/upstream/callback', async function upstreamCallbackRoute(ctx) {
    ctx.set('Cache-Control', 'no-store');
    const stateParam = typeof ctx.query.state === 'string' ? ctx.query.state : '';
    const fail = (status: number, error: string, description: string, retryUrl: string | null) => {
      ctx.status = status;
      ctx.type = 'html';
      ctx.body = renderConnectErrorPage(error, description, retryUrl);
    };
    if (!stateParam) return fail(400, 'invalid_request', 'The upstream sent no state; start again from the consent screen.', null);
    const stateHash = sha256(stateParam);
    const pending = await store.getUpstreamAuthorization(stateHash);
    if (!pending) return fail(400, 'invalid_request', 'This connection attempt is unknown; start again from the consent screen.', null);
    // The attempt belongs to a consent flow, or to a connect started from a URL elicitation link.
    const owner = await confirmedAuthorizationOwner(store, pending);
    if (!owner) return fail(400, 'invalid_request', 'This connection attempt belongs to no sign-in; start again from the consent screen.', null);
    const connectId = owner.kind === 'connect' ? owner.connectId : null;
    const retryUrl = connectId ? `/connect?elicitationId=${encodeURIComponent(connectId)}` : `/interaction/${pending.flowId}`;
    const displayName = config.upstreams.find((upstream) => upstream.name === pending.upstream)?.displayName ?? pending.upstream;
    if (!(await browser.check(ctx, pending.flowId))) {
      return fail(403, 'access_denied', 'This connection belongs to a sign-in started in another browser.', null);
    }
    const params = new URLSearchParams(ctx.querystring);
    // Before anything reaches the flow: an answer (a code or an error) another server sent with this
    // attempt's state is not taken, and the attempt stays open for the real one.
    const foreign = foreignAnswer(pending, params);
    if (foreign) {
      log.warn('upstream callback refused: not from the authorization server', { flowId: pending.flowId, upstream: pending.upstream, reason: foreign });
      return fail(
        400,
        'invalid_request',
        `This answer did not come from ${displayName}'s authorization server (${foreign}), so it was not used. Finish connecting ${displayName} where you started, or try again.`,
        retryUrl,
      );
    }
    const callbackInput = (error?: string) => ({ upstream: pending.upstream, stateHash, ...(error ? { error } : {}) });
    // One update id per authorization: a reload of this callback reaches the update its first
    // request sent (running or finished) instead of starting a second one.
    const updateId = `callback:${stateHash}`;
    /** Sends the callback to the owning workflow; answers how the connection stands. */
    const deliver = async (error?: string): Promise<{ status: string; error: string | null; message: string | null } | undefined> => {
      if (connectId) {
        return temporal.workflow.getHandle(upstreamConnectWorkflowId(connectId)).executeUpdate(connectCallback, { args: [callbackInput(error)], updateId });
      }
      const state = await temporal.workflow.getHandle(consentWorkflowId(pending.flowId)).executeUpdate(upstreamCallback, { args: [callbackInput(error)], updateId });
      return state.connections[pending.upstream];
    };
    const upstreamError = params.get('error');
    try {
      if (upstreamError) {
        await deliver(upstreamError.slice(0, 64));
        return fail(400, upstreamError, `${displayName} did not grant access (${upstreamError}).`, retryUrl);
      }
      const code = params.get('code');
      if (!code) return fail(400, 'invalid_request', `${displayName} sent no authorization code.`, retryUrl);
      const now = Math.floor(Date.now() / 1000);
      const completed = await store.completeUpstreamAuthorization(
        stateHash,
        {
          code: deps.cipher.seal(code, `upstream_authorizations:${stateHash}:code`),
          callback: deps.cipher.seal(params.toString(), `upstream_authorizations:${stateHash}:callback`),
        },
        now,
      );
      // The same browser loading this same callback again (its first request was cut off: a dropped
      // connection, a web process that died) goes on with the update the first one sent.
      if (!completed && !(await sameCompletedCallback(stateHash, code, now))) {
        return fail(400, 'invalid_request', 'This connection attempt was already used or has expired.', retryUrl);
      }
      const connection = await deliver();
      if (connection?.status !== 'connected') {
        log.warn('upstream connect failed', { flowId: pending.flowId, upstream: pending.upstream, error: connection?.error });
        return fail(502, connection?.error ?? 'server_error', `Connecting ${displayName} failed: ${connection?.message ?? 'unknown error'}.`, retryUrl);
      }
      log.info('upstream connected', { flowId: pending.flowId, upstream: pending.upstream, user: pending.userId });
      // The exchange moved the version on from the tokens it replaced: above 1, there were some.
      const connected = await store.getUpstreamTokens(pending.userId, pending.upstream);
      await deps.audit.record({
        kind: connected && connected.version > 1 ? 'upstream.reconnected' : 'upstream.connected',
        userId: pending.userId,
        clientId: connectId ? ((await store.getElicitation(connectId))?.clientId ?? null) : ((await store.getFlow(pending.flowId))?.clientId ?? null),
        upstream: pending.upstream,
        flowId: connectId ? upstreamConnectWorkflowId(connectId) : consentWorkflowId(pending.flowId),
        sourceIp: ctx.ip || null,
      }, `upstream-callback:${stateHash}`);
      await startGrant(pending.userId, pending.upstream);
      if (!connectId) return ctx.redirect(retryUrl);
      await store.completeElicitation(connectId, Math.floor(Date.now() / 1000));
      const elicitation = await store.getElicitation(connectId);
      await deps.mcp?.elicitationCompleted?.(pending.userId, elicitation?.clientId, connectId).catch((error: unknown) => {
        log.warn('could not notify the MCP sessions', { error: String(error) });
      });
      ctx.type = 'html';
      ctx.body = renderConnectedPage(displayName, elicitation?.clientId === MY_CONNECTIONS_CLIENT_ID);
    } catch (error) {
      if (error instanceof WorkflowUpdateFailedError || error instanceof WorkflowNotFoundError) {
        return fail(409, 'invalid_transition', 'The sign-in has moved on or ended; start again from your application.', null);
      }
      throw error;
    }
  });

  return router;
}

/**
 * Why a callback is not the answer of the authorization server the attempt was sent to (RFC 9207
 * §2.4, with the same check the code exchange makes): an `iss` naming another issuer, or none
 * though that server advertises `authorization_response_iss_parameter_supported`. Error answers
 * are held to it like codes, so a forged `error` cannot end the attempt. Undefined when the answer
 * passes, or the attempt was recorded without its issuer.
 */
function foreignAnswer(pending: UpstreamAuthorizationRecord, params: URLSearchParams): string | undefined {
  if (pending.issuer === undefined) return undefined;
  const as: oauth.AuthorizationServer = { issuer: pending.issuer, authorization_response_iss_parameter_supported: pending.issRequired === true };
  try {
    oauth.validateAuthResponse(as, { client_id: pending.upstream }, params, oauth.skipStateCheck);
  } catch (error) {
    // An error answer from the right server, or one the code exchange refuses for other reasons.
    if (!(error instanceof oauth.OperationProcessingError)) return undefined;
    return error.message.replace(/^response parameter /, '');
  }
  return undefined;
}

function renderConnectedPage(displayName: string, fromMyConnections: boolean): string {
  const title = `${displayName} is connected`;
  if (fromMyConnections) {
    return renderMessage({ title, sentences: [`Your ${displayName} account is connected. Your applications can use it now.`], link: { href: '/connections', text: 'Back to My connections' } });
  }
  return renderMessage({ title, sentences: [`Your ${displayName} account is connected. Go back to your application: it can try again now.`] });
}

function renderConnectErrorPage(error: string, description: string, retryUrl: string | null): string {
  return renderMessage({ title: 'Connecting did not complete', sentences: [description], errorCode: error, ...(retryUrl ? { link: { href: retryUrl, text: 'Try again' } } : {}) });
}

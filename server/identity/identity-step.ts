import type { Context } from 'koa';
import type { ChooseIdentityInput, ConsentFlowState } from '../../workflows/consent-flow/messages.js';
import type { GatewayConfig } from '../config.js';
import type { TokenCipher } from '../crypto/token-cipher.js';
import { ExpiredError, InvalidRequestError, InvalidTransitionError, OAuthError, TemporarilyUnavailableError } from '../errors.js';
import type { Logger } from '../log.js';
import type { OAuthModels } from '../store/store.js';
import { headerIdentity, type ProxyIdentity } from './header-identity.js';
import { IdpTokens } from './idp-tokens.js';
import { renderLoginErrorPage } from './login-error-page.js';
import { IDP_REFUSED, INVALID_AUTHORIZATION_RESPONSE, IdentityLoginError, OidcLogin, idpCallbackPath, type StartedLogin } from './oidc-login.js';
import { PendingLogins } from './pending-logins.js';
import { maxUserIdLength, validUserId } from './user-id.js';

/** What the identity step needs from the consent routes. */
export interface IdentityStepDeps {
  config: GatewayConfig;
  store: OAuthModels;
  log: Logger;
  /** Rejects with a 403 {@link OAuthError} unless the request comes from the browser the flow is bound to. */
  boundBrowser(ctx: Context, flowId: string): Promise<unknown>;
  /** Whether the flow's OAuth interaction still exists. */
  interactionAlive(flowId: string): Promise<boolean>;
  /** The `chooseIdentity` update (idempotent per flow), its refusals mapped onto {@link OAuthError}s. */
  chooseIdentity(flowId: string, input: ChooseIdentityInput): Promise<ConsentFlowState>;
  currentState(flowId: string): Promise<ConsentFlowState>;
  /** Seals the IdP's tokens kept at each sign-in (`oidc` mode); without it they are not kept. */
  cipher?: TokenCipher;
}

/** The answer to `POST /interaction/:uid/identity`: the flow moved on (dev), or the browser goes to the IdP (oidc). */
export type IdentitySubmission = { state: ConsentFlowState } | { redirectTo: string };

/** The consent flow's identity step in the configured mode (DESIGN.md, decision 9). */
export interface IdentityStep {
  /** `POST /interaction/:uid/identity`, after the browser binding and CSRF checks. */
  submit(flowId: string, body: Record<string, unknown>): Promise<IdentitySubmission>;
  /**
   * `header` mode: when a trusted proxy names the user and the flow is at its identity step, moves
   * the flow on as that user; returns the flow's state afterwards. Other modes return `state`.
   */
  adoptProxyIdentity(ctx: Context, flowId: string, state: ConsentFlowState): Promise<ConsentFlowState>;
  /** `GET /oauth/idp/callback`, the redirect URI at the IdP; only in `oidc` mode. */
  idpCallback: ((ctx: Context) => Promise<void>) | undefined;
}

/**
 * Builds the identity step for `config.identity.mode`:
 * - `dev`: the browser posts a typed user name (loopback only; config refuses it elsewhere);
 * - `oidc`: the browser posts `{}`, is sent to the IdP ({@link OidcLogin}) and comes back to
 *   {@link idpCallbackPath}, which moves the flow on as the ID token's `sub`;
 * - `header`: the user comes from a trusted reverse proxy's header on the consent page's own
 *   requests; nothing is posted.
 */
export function createIdentityStep(deps: IdentityStepDeps): IdentityStep {
  const { config, log } = deps;
  const mode = config.identity.mode;
  const header = mode === 'header' ? config.identity.header : undefined;
  const readProxyIdentity: ((req: Context['req']) => ProxyIdentity) | undefined = header ? headerIdentity(header) : undefined;
  const oidcSettings = mode === 'oidc' ? config.identity.oidc : undefined;
  const oidc = oidcSettings
    ? new OidcLogin({ ...oidcSettings, redirectUri: `${config.http.publicUrl}${idpCallbackPath}`, pending: new PendingLogins(deps.store.oauth), tokens: deps.cipher ? new IdpTokens(deps.store.oauth, deps.cipher) : undefined })
    : undefined;

  async function submit(flowId: string, body: Record<string, unknown>): Promise<IdentitySubmission> {
    if (mode === 'dev') {
      const userId = validUserId(body.userId);
      if (!userId) throw new InvalidRequestError(`userId must be 1 to ${maxUserIdLength} printable characters`);
      return { state: await deps.chooseIdentity(flowId, { userId, source: 'dev' }) };
    }
    if (mode === 'oidc' && oidc) {
      if ('userId' in body) throw new InvalidRequestError('identity mode oidc signs the user in at the identity provider; it does not take a typed user name');
      const state = await deps.currentState(flowId);
      if (state.status === 'expired') throw new ExpiredError('this sign-in request has expired');
      if (state.step !== 'identity') throw new InvalidTransitionError(`the flow is at step "${state.step}", not "identity"`);
      try {
        return { redirectTo: await oidc.start(flowId) };
      } catch (error) {
        if (!(error instanceof IdentityLoginError)) throw error;
        log.warn('identity provider unavailable', { flowId, reason: error.message });
        throw new TemporarilyUnavailableError('the identity provider cannot be reached right now; try again in a moment');
      }
    }
    throw new InvalidRequestError(mode === 'header' ? 'identity mode header takes the user from the trusted reverse proxy; there is nothing to submit' : `identity mode ${mode} is not configured`);
  }

  async function adoptProxyIdentity(ctx: Context, flowId: string, state: ConsentFlowState): Promise<ConsentFlowState> {
    if (!readProxyIdentity || !header) return state;
    const found = readProxyIdentity(ctx.req);
    if (found.kind === 'untrusted') {
      log.warn('identity header ignored: the peer is not a trusted proxy', { flowId, header: header.name, peer: found.peer });
    } else if (found.kind === 'invalid') {
      log.warn('identity header from the trusted proxy refused', { flowId, header: header.name, reason: found.reason });
    }
    if (found.kind !== 'user' || state.step !== 'identity') return state;
    try {
      return await deps.chooseIdentity(flowId, { userId: found.userId, source: 'header' });
    } catch (error) {
      // A concurrent request of the same page took the step, or the flow just expired.
      if (error instanceof OAuthError && (error.status === 409 || error.status === 410)) return deps.currentState(flowId);
      throw error;
    }
  }

  async function idpCallback(ctx: Context): Promise<void> {
    if (!oidc) return;
    ctx.set('Cache-Control', 'no-store');
    const page = (status: number, error: string, description: string, retryFlowId: string | null) => {
      ctx.status = status;
      ctx.type = 'html';
      ctx.body = renderLoginErrorPage(error, description, retryFlowId ? `/interaction/${encodeURIComponent(retryFlowId)}` : null);
    };
    const parameters = new URLSearchParams(ctx.querystring);

    let login: StartedLogin;
    try {
      login = await oidc.pendingFor(parameters);
    } catch (error) {
      if (!(error instanceof IdentityLoginError)) throw error;
      log.warn('identity provider callback refused', { code: error.code });
      page(400, error.code, error.message, null);
      return;
    }
    const flowId = login.flowId;
    try {
      await deps.boundBrowser(ctx, flowId);
    } catch (error) {
      if (!(error instanceof OAuthError && error.status === 403)) throw error;
      log.warn('identity provider callback refused: another browser', { flowId });
      page(403, 'session_not_found', '', null);
      return;
    }
    if (!(await deps.interactionAlive(flowId))) {
      page(410, 'expired', '', null);
      return;
    }

    let userId: string;
    try {
      userId = await oidc.finish(parameters, login);
    } catch (error) {
      if (!(error instanceof IdentityLoginError)) throw error;
      log.warn('sign-in at the identity provider failed', { flowId, code: error.code, idpError: error.idpError, reason: error.message });
      const status = error.code === IDP_REFUSED || error.code === INVALID_AUTHORIZATION_RESPONSE ? 400 : 502;
      page(status, error.idpError === 'access_denied' ? 'access_denied' : error.code, error.message, flowId);
      return;
    }
    try {
      await deps.chooseIdentity(flowId, { userId, source: 'oidc' });
    } catch (error) {
      if (error instanceof OAuthError && error.status === 410) {
        page(410, 'expired', '', null);
        return;
      }
      // 409: another tab finished the step first; the flow's page shows where it stands.
      if (!(error instanceof OAuthError && error.status === 409)) throw error;
    }
    log.info('signed in at the identity provider', { flowId, user: userId });
    ctx.status = 303;
    ctx.redirect(`/interaction/${encodeURIComponent(flowId)}`);
  }

  return { submit, adoptProxyIdentity, idpCallback: oidc ? idpCallback : undefined };
}

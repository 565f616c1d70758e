import Router from '@koa/router';
import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import type { Interaction } from 'oidc-provider';
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { FlowView, UpstreamView } from '../views/consent.js';
import { chooseIdentity, chooseServices, connectUpstream, type ConsentFlowState, consentWorkflowId, decide, flowState } from '../../workflows/consent-flow/messages.js';
import { needsUserConnection, type GatewayConfig } from '../config.js';
import { ExpiredError, InvalidClientError, InvalidRequestError, InvalidTransitionError, NotFoundError, OAuthError, TemporarilyUnavailableError } from '../errors.js';
import { createIdentityStep } from '../identity/identity-step.js';
import { idpCallbackPath } from '../identity/oidc-login.js';
import type { Logger } from '../log.js';
import { renderErrorPage } from '../oauth/error-page.js';
import { mcpScope, offlineAccessScope, type OAuthServer } from '../oauth/provider.js';
import { upstreamScope, upstreamsOfScope } from '../mcp/resources.js';
import type { GatewayStore } from '../store/store.js';
import { startConsentFlow } from '../temporal/client.js';
import type { TokenCipher } from '../crypto/token-cipher.js';
import { upstreamConnectionStatus } from '../upstream-status.js';
import { escapeHtml } from '../html.js';
import type { AuditRecorder } from '../audit/audit-log.js';
import { countFlowStarted } from '../metrics.js';
import type { BrowserBinding } from '../middleware/browser-binding.js';
import { readJsonBody } from '../middleware/json-body.js';
import { requireWithinLimits, TooManyRequestsError, type GatewayLimits } from '../limits/gateway-limits.js';

/** What the interaction routes need. */
export interface InteractionRouteDeps {
  /** Opens the sealed upstream authorization URLs the workflow prepared. */
  cipher: TokenCipher;
  config: GatewayConfig;
  oauth: OAuthServer;
  temporal: Client;
  store: GatewayStore;
  log: Logger;
  /** Ties each flow to the browser that opened it and checks the CSRF token of its POSTs. */
  binding: BrowserBinding;
  audit: AuditRecorder;
  /** The consent page's limits per address and client, and the cap on flows a client has pending. */
  limits: GatewayLimits;
}

const jsonBodyLimit = 16 * 1024;

/**
 * The consent flow's browser side: `/interaction/:uid` starts (or resumes) the `consentFlow`
 * workflow for an authorization request and serves the consent screens; its JSON API moves the
 * workflow with updates. The flow is bound to the browser that opened it, every POST carries a
 * CSRF token, and the approve route finishes the OAuth interaction in the HTTP request, so the
 * authorization code never enters workflow history. In `oidc` identity mode it also serves the
 * IdP's redirect URI, {@link idpCallbackPath}. The upstream's redirect back is
 * `upstream-callback.ts`.
 */
export function interactionRoutes(deps: InteractionRouteDeps): Router {
  const { config, oauth, temporal, store, log, binding: browser } = deps;
  const provider: Provider = oauth.provider;
  const router = new Router({ prefix: '/interaction/:uid' });
  const root = new Router();

  const csrfSubject = (uid: string, binding: string) => `csrf.${uid}.${binding}`;

  async function loadInteraction(uid: string): Promise<Interaction | undefined> {
    if (!/^[A-Za-z0-9_-]{10,64}$/.test(uid)) return undefined;
    return provider.Interaction.find(uid);
  }

  /** The browser's binding value for this flow, after checking it is the browser the flow is bound to. */
  const boundBrowser = (ctx: Context, uid: string) => browser.require(ctx, uid);

  /** A step POST's checks, in order: a live interaction, the bound browser, its CSRF token; then its JSON body. */
  async function acceptPost(ctx: Context): Promise<{ uid: string; interaction: Interaction; body: Record<string, unknown> }> {
    const uid = ctx.params.uid ?? '';
    const interaction = await requireInteraction(ctx);
    browser.checkPost(ctx, csrfSubject(uid, await boundBrowser(ctx, uid)));
    return { uid, interaction, body: await readJsonBody(ctx, { limit: jsonBodyLimit }) };
  }

  async function view(uid: string, state: ConsentFlowState, redirectTo: string | null): Promise<FlowView> {
    const tokens = state.userId ? await store.listUpstreamTokens(state.userId) : [];
    // A flow for one upstream's endpoint (/mcp/<name>) offers that upstream alone.
    const upstreams: UpstreamView[] = config.upstreams.filter((upstream) => state.availableUpstreams.includes(upstream.name)).map((upstream) => ({
      name: upstream.name,
      displayName: upstream.displayName,
      status: upstreamConnectionStatus(upstream, tokens.find((record) => record.upstream === upstream.name)),
      authRequired: needsUserConnection(upstream.auth),
      scopes: upstream.scopes,
    }));
    return {
      flowId: uid,
      step: state.step,
      status: state.status,
      identityMode: config.identity.mode,
      user: state.userId ? { id: state.userId } : null,
      client: state.client,
      upstreams,
      chosenUpstreams: state.chosenUpstreams,
      scopes: state.scopes,
      expiresAt: state.expiresAt,
      redirectTo,
    };
  }

  /** The MCP endpoint the client asked a token for (RFC 8707 `resource`); the aggregate `/mcp` when it named none. */
  function requestedResource(interaction: Interaction): string {
    const resource = interaction.params.resource;
    const first = Array.isArray(resource) ? resource[0] : resource;
    return typeof first === 'string' && oauth.resources.parse(first) ? first : oauth.mcpResource;
  }

  /** The upstreams the request's upstream scopes name (SEP-2350) that its resource allows; `undefined` when it names none. */
  function requestedUpstreams(interaction: Interaction): string[] | undefined {
    const allowed = new Set(oauth.resources.upstreamScopesOf(requestedResource(interaction)));
    const named = [...new Set(upstreamsOfScope(String(interaction.params.scope ?? '')))].filter((name) => allowed.has(upstreamScope(name)));
    return named.length > 0 ? named : undefined;
  }

  /**
   * The upstreams a flow offers: exactly one for `/mcp/<upstream>`; for `/mcp`, those the request's
   * upstream scopes name, else all of them. A step-up (a request naming upstream scopes from a
   * browser already signed in) asks only about the upstreams this user has not yet granted the
   * client; the consent to the others stays, so the new grant is the union.
   */
  async function offeredUpstreams(interaction: Interaction): Promise<string[]> {
    const target = oauth.resources.parse(requestedResource(interaction));
    if (target?.kind === 'upstream') return [target.upstream];
    const requested = requestedUpstreams(interaction);
    if (!requested) return config.upstreams.map((upstream) => upstream.name);
    const userId = interaction.session?.accountId;
    const granted = userId ? ((await store.getConsent(userId, String(interaction.params.client_id)))?.upstreams ?? []) : [];
    const fresh = requested.filter((name) => !granted.includes(name));
    return fresh.length > 0 ? fresh : requested;
  }

  /** Saves the user's consent to this client: the flow decides only the upstreams it offered, consent to the others stays. */
  async function rememberConsent(state: ConsentFlowState, userId: string): Promise<void> {
    const earlier = await store.getConsent(userId, state.client.clientId);
    const kept = (earlier?.upstreams ?? []).filter((name) => !state.availableUpstreams.includes(name));
    await store.saveConsent({
      userId,
      clientId: state.client.clientId,
      upstreams: [...kept, ...state.chosenUpstreams],
      scopes: state.scopes,
      flowId: state.flowId,
      grantedAt: new Date().toISOString(),
    });
  }

  /** Ends the OAuth interaction for a finished flow; returns where the browser goes next. */
  async function finish(ctx: Context, interaction: Interaction, state: ConsentFlowState): Promise<string> {
    const outcome = state.outcome;
    if (outcome) {
      const kind = outcome.kind === 'approved' ? (outcome.remembered ? 'consent.remembered' : 'consent.approved') : outcome.kind === 'denied' ? 'consent.denied' : 'consent.expired';
      // One entry per flow whoever records it first (this route, a repeated request, or the expiry).
      await deps.audit.record(
        { kind, userId: state.userId, clientId: state.client.clientId, flowId: consentWorkflowId(state.flowId), outcome: outcome.kind === 'approved' ? 'ok' : outcome.kind, sourceIp: ctx.ip || null },
        `flow-outcome:${state.flowId}`,
      );
    }
    if (outcome?.kind === 'approved') {
      const grant = interaction.grantId ? ((await provider.Grant.find(interaction.grantId)) ?? undefined) : undefined;
      const target = grant ?? new provider.Grant({ accountId: outcome.userId, clientId: state.client.clientId });
      target.addOIDCScope(mcpScope);
      // Asked for (and kept by the provider): the refresh token the client wants (SEP-2207).
      if (String(interaction.params.scope ?? '').split(' ').includes(offlineAccessScope)) target.addOIDCScope(offlineAccessScope);
      // The upstream scopes asked for ride along: the consent record decides what they reach.
      target.addResourceScope(requestedResource(interaction), [mcpScope, ...(requestedUpstreams(interaction) ?? []).map(upstreamScope)].join(' '));
      const grantId = await target.save();
      const redirectTo = await provider.interactionResult(ctx.req, ctx.res, { login: { accountId: outcome.userId }, consent: { grantId } }, { mergeWithLastSubmission: false });
      // Remembered only now that the authorization result is stored: a decision whose authorization
      // fails (another browser, an expired interaction) pre-approves nothing for later flows.
      if (!outcome.remembered) await rememberConsent(state, outcome.userId);
      return redirectTo;
    }
    const description = outcome?.kind === 'expired' ? 'the consent request expired' : 'the user denied access';
    return provider.interactionResult(ctx.req, ctx.res, { error: 'access_denied', error_description: description }, { mergeWithLastSubmission: false });
  }

  async function currentState(uid: string): Promise<ConsentFlowState> {
    try {
      return await temporal.workflow.getHandle(consentWorkflowId(uid)).query(flowState);
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) throw new NotFoundError('no such consent flow');
      throw error;
    }
  }

  /** Runs a step update; maps the workflow's refusals onto HTTP answers. */
  async function step(uid: string, run: (handle: ReturnType<Client['workflow']['getHandle']>) => Promise<ConsentFlowState>): Promise<ConsentFlowState> {
    const handle = temporal.workflow.getHandle(consentWorkflowId(uid));
    try {
      return await run(handle);
    } catch (error) {
      // Where the flow stands explains the refusal better than the error does: an expired flow
      // refuses every step, whether its workflow is still closing or already closed.
      const state = await currentState(uid).catch(() => undefined);
      if (state?.status === 'expired') throw new ExpiredError('this sign-in request has expired');
      if (error instanceof WorkflowUpdateFailedError && error.cause instanceof ApplicationFailure) {
        if (error.cause.type === 'invalid_transition') throw new InvalidTransitionError(error.cause.message);
        if (error.cause.type === 'invalid_request') throw new InvalidRequestError(error.cause.message);
      }
      if (state?.step === 'done') throw new InvalidTransitionError(`the flow has already ended: ${state.status}`);
      if (error instanceof WorkflowNotFoundError) throw new NotFoundError('no such consent flow');
      throw error;
    }
  }

  /**
   * Whether the request carries the OAuth server's interaction cookie of this flow: only the browser
   * that sent the authorization request holds it, and only that browser can finish the flow, so a
   * step from any other browser is refused before the workflow hears of it.
   */
  async function heldByThisBrowser(ctx: Context, uid: string): Promise<boolean> {
    const held = await provider.interactionDetails(ctx.req, ctx.res).catch(() => undefined);
    return held?.uid === uid;
  }

  async function requireInteraction(ctx: Context): Promise<Interaction> {
    const uid = ctx.params.uid ?? '';
    const interaction = await loadInteraction(uid);
    if (!interaction) throw new ExpiredError('this sign-in request has expired or does not exist');
    if (!(await heldByThisBrowser(ctx, uid))) throw new OAuthError(403, 'access_denied', 'this sign-in request can only be finished in the browser that started it; start again from your application');
    return interaction;
  }

  // Identity modes (DESIGN.md, decision 9) live in server/identity/; these routes only call into them.
  const identity = createIdentityStep({
    config,
    store,
    log,
    boundBrowser,
    interactionAlive: async (uid) => (await loadInteraction(uid)) !== undefined,
    chooseIdentity: (uid, input) => step(uid, (handle) => handle.executeUpdate(chooseIdentity, { args: [input], updateId: `${uid}:identity` })),
    currentState,
    cipher: deps.cipher,
  });
  if (identity.idpCallback) root.get(idpCallbackPath, identity.idpCallback);

  const json = async function jsonOnly(ctx: Context, next: Next) {
    ctx.set('Cache-Control', 'no-store');
    await next();
  };

  router.get('/', async function consentPage(ctx) {
    const uid = ctx.params.uid ?? '';
    const interaction = await loadInteraction(uid);
    ctx.set('Cache-Control', 'no-store');
    if (!interaction) {
      ctx.status = 410;
      ctx.type = 'html';
      ctx.body = renderErrorPage('expired', '', 'This sign-in request has expired');
      return;
    }
    const refuseOtherBrowser = () => {
      ctx.status = 403;
      ctx.type = 'html';
      ctx.body = renderErrorPage('session_not_found', '', 'This sign-in request belongs to another browser');
    };
    // No workflow starts for a request whose authorization this browser did not send.
    if (!(await heldByThisBrowser(ctx, uid))) return refuseOtherBrowser();
    const clientId = String(interaction.params.client_id ?? '');
    await requireWithinLimits(deps.limits.consentPage, ctx.ip, clientId, 'consent page loads');
    if ((await browser.check(ctx, uid)) === undefined) {
      // A flow's first load starts its workflow: the client's pending flows are capped here.
      const pending = await deps.limits.pendingFlows(clientId);
      if (!pending.allowed) throw new TooManyRequestsError(`too many sign-in requests of this application are pending; retry in ${pending.retryAfterSeconds} s`, pending.retryAfterSeconds);
    }
    const binding = await browser.bind(ctx, uid, interaction.exp * 1000 - Date.now());
    if (!binding) return refuseOtherBrowser();

    const client = await provider.Client.find(String(interaction.params.client_id));
    if (!client) throw new InvalidClientError('the client of this request no longer exists');
    const redirectUri = String(interaction.params.redirect_uri ?? '');
    let redirectHost: string | null = null;
    try {
      redirectHost = new URL(redirectUri).host || new URL(redirectUri).protocol;
    } catch {
      redirectHost = null;
    }
    const ttlMs = Math.max(1_000, Math.min(config.flowTtlMs, interaction.exp * 1000 - Date.now() - 30_000));
    await startConsentFlow(temporal, config.temporal.taskQueue, {
      flowId: uid,
      client: { clientId: client.clientId, clientName: client.clientName ?? null, redirectHost, registration: oauth.registrationOf(client) },
      upstreams: await offeredUpstreams(interaction),
      scopes: [mcpScope],
      ttlMs,
    }).then(countFlowStarted, (error: unknown) => {
      if ((error as Error).name !== 'WorkflowExecutionAlreadyStartedError') throw error;
    });
    if (config.identity.mode === 'header') await identity.adoptProxyIdentity(ctx, uid, await currentState(uid));

    // A browser that already signed in through an earlier flow continues as that user; behind a
    // trusted proxy the proxy's header decides every time instead.
    const sessionUser = interaction.session?.accountId;
    if (sessionUser && config.identity.mode !== 'header') {
      await temporal.workflow
        .getHandle(consentWorkflowId(uid))
        .executeUpdate(chooseIdentity, { args: [{ userId: sessionUser, source: config.identity.mode }], updateId: `${uid}:identity` })
        .catch((error: unknown) => {
          if (!(error instanceof WorkflowUpdateFailedError)) throw error;
        });
    }

    ctx.type = 'html';
    ctx.set('Content-Security-Policy', "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'");
    ctx.body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Consent Gateway</title></head>
<body><cg-consent-app flow-id="${escapeHtml(uid)}" csrf-token="${escapeHtml(browser.csrfToken(csrfSubject(uid, binding)))}" api-base="/interaction/${escapeHtml(uid)}"></cg-consent-app>
<script type="module" src="/assets/consent-app.js"></script></body></html>`;
  });

  router.get('/state', json, async function getState(ctx) {
    const uid = ctx.params.uid ?? '';
    const interaction = await requireInteraction(ctx);
    await boundBrowser(ctx, uid);
    const state = await identity.adoptProxyIdentity(ctx, uid, await currentState(uid));
    const redirectTo = state.step === 'done' ? await finish(ctx, interaction, state) : null;
    ctx.body = await view(uid, state, redirectTo);
  });

  router.post('/identity', json, async function postIdentity(ctx) {
    const { uid, body } = await acceptPost(ctx);
    const result = await identity.submit(uid, body);
    ctx.body = 'redirectTo' in result ? { redirectTo: result.redirectTo } : await view(uid, result.state, null);
  });

  router.post('/services', json, async function postServices(ctx) {
    const { uid, interaction, body } = await acceptPost(ctx);
    const upstreams = body.upstreams;
    if (!Array.isArray(upstreams) || upstreams.some((name) => typeof name !== 'string') || upstreams.length > 64) {
      throw new InvalidRequestError('upstreams must be a list of upstream names');
    }
    const state = await step(uid, (handle) =>
      handle.executeUpdate(chooseServices, { args: [{ upstreams: upstreams as string[] }], updateId: `${uid}:services` }),
    );
    const redirectTo = state.step === 'done' ? await finish(ctx, interaction, state) : null;
    ctx.body = await view(uid, state, redirectTo);
  });

  router.post('/decision', json, async function postDecision(ctx) {
    const { uid, interaction, body } = await acceptPost(ctx);
    if (body.decision !== 'approve' && body.decision !== 'deny') throw new InvalidRequestError('decision must be "approve" or "deny"');
    const decision = body.decision;
    const state = await step(uid, (handle) => handle.executeUpdate(decide, { args: [{ decision }], updateId: `${uid}:decision` }));
    const redirectTo = await finish(ctx, interaction, state);
    log.info('consent decided', { flowId: uid, client: state.client.clientId, user: state.userId, decision });
    ctx.body = await view(uid, state, redirectTo);
  });

  router.post('/connect', json, async function postConnect(ctx) {
    const { uid, body } = await acceptPost(ctx);
    const upstream = config.upstreams.find((candidate) => candidate.name === body.upstream);
    if (!upstream) throw new InvalidRequestError('upstream must name a configured upstream');
    if (!needsUserConnection(upstream.auth)) throw new InvalidRequestError(`${upstream.displayName} needs no connection`);
    // A fresh update per click: each click is a new single-use authorization at the upstream.
    const state = await step(uid, (handle) => handle.executeUpdate(connectUpstream, { args: [{ upstream: upstream.name }] }));
    const connection = state.connections[upstream.name];
    if (connection?.status === 'failed' || !state.authorizationRef) {
      throw new OAuthError(502, connection?.error ?? 'temporarily_unavailable', `${upstream.displayName} could not be reached: ${connection?.message ?? 'no authorization was prepared'}`);
    }
    const sealed = await store.getExchangeResult(state.authorizationRef);
    if (!sealed) throw new TemporarilyUnavailableError('the authorization was not prepared; try again', { status: 502 });
    ctx.body = { redirectTo: deps.cipher.open(sealed, state.authorizationRef) };
  });

  root.use(router.routes());
  return root;
}

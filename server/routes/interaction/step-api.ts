import type Router from '@koa/router';
import type { Context, Next } from 'koa';
import type { Interaction } from 'oidc-provider';
import { chooseServices, connectUpstream, type ConsentFlowState, decide } from '../../../workflows/consent-flow/messages.js';
import { needsUserConnection } from '../../config.js';
import { InvalidRequestError, OAuthError, TemporarilyUnavailableError } from '../../errors.js';
import type { IdentityStep } from '../../identity/identity-step.js';
import { readJsonBody } from '../../middleware/json-body.js';
import { upstreamConnectionStatus } from '../../upstream-status.js';
import type { FlowView, UpstreamView } from '../../views/consent.js';
import { csrfSubject, type InteractionAccess } from './access.js';
import type { InteractionRouteDeps } from './deps.js';
import { finish } from './finish.js';
import { currentState, rememberedConsent, step } from './flow.js';

const jsonBodyLimit = 16 * 1024;

/** The consent page's JSON view of a flow: where it stands, and each offered upstream with this user's connection to it. */
async function view({ config, store }: InteractionRouteDeps, uid: string, state: ConsentFlowState, redirectTo: string | null): Promise<FlowView> {
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

/**
 * The consent page's JSON API under `/interaction/:uid`: `GET /state`, and the step POSTs
 * `/identity`, `/services`, `/decision` and `/connect`, which move the workflow with updates. A
 * finished flow's OAuth interaction ends in the same request.
 */
export function mountStepApi(router: Router, deps: InteractionRouteDeps, access: InteractionAccess, identity: IdentityStep): void {
  const { config, temporal, store, log, binding: browser } = deps;

  /** A step POST's checks, in order: a live interaction, the bound browser, its CSRF token; then its JSON body. */
  async function acceptPost(ctx: Context): Promise<{ uid: string; interaction: Interaction; body: Record<string, unknown> }> {
    const uid = ctx.params.uid ?? '';
    const interaction = await access.requireInteraction(ctx);
    browser.checkPost(ctx, csrfSubject(uid, await access.boundBrowser(ctx, uid)));
    return { uid, interaction, body: await readJsonBody(ctx, { limit: jsonBodyLimit }) };
  }

  const json = async function jsonOnly(ctx: Context, next: Next) {
    ctx.set('Cache-Control', 'no-store');
    await next();
  };

  router.get('/state', json, async function getState(ctx) {
    const uid = ctx.params.uid ?? '';
    const interaction = await access.requireInteraction(ctx);
    await access.boundBrowser(ctx, uid);
    const state = await identity.adoptProxyIdentity(ctx, uid, await currentState(temporal, uid));
    const redirectTo = state.step === 'done' ? await finish(deps, ctx, interaction, state) : null;
    ctx.body = await view(deps, uid, state, redirectTo);
  });

  router.post('/identity', json, async function postIdentity(ctx) {
    const { uid, body } = await acceptPost(ctx);
    const result = await identity.submit(uid, body);
    ctx.body = 'redirectTo' in result ? { redirectTo: result.redirectTo } : await view(deps, uid, result.state, null);
  });

  router.post('/services', json, async function postServices(ctx) {
    const { uid, interaction, body } = await acceptPost(ctx);
    const upstreams = body.upstreams;
    if (!Array.isArray(upstreams) || upstreams.some((name) => typeof name !== 'string') || upstreams.length > 64) {
      throw new InvalidRequestError('upstreams must be a list of upstream names');
    }
    const remembered = await rememberedConsent(store, uid);
    const state = await step(deps, uid, (handle) =>
      handle.executeUpdate(chooseServices, { args: [{ upstreams: upstreams as string[], remembered }], updateId: `${uid}:services` }),
    );
    const redirectTo = state.step === 'done' ? await finish(deps, ctx, interaction, state) : null;
    ctx.body = await view(deps, uid, state, redirectTo);
  });

  router.post('/decision', json, async function postDecision(ctx) {
    const { uid, interaction, body } = await acceptPost(ctx);
    if (body.decision !== 'approve' && body.decision !== 'deny') throw new InvalidRequestError('decision must be "approve" or "deny"');
    const decision = body.decision;
    const state = await step(deps, uid, (handle) => handle.executeUpdate(decide, { args: [{ decision }], updateId: `${uid}:decision` }));
    const redirectTo = await finish(deps, ctx, interaction, state);
    log.info('consent decided', { flowId: uid, client: state.client.clientId, user: state.userId, decision });
    ctx.body = await view(deps, uid, state, redirectTo);
  });

  router.post('/connect', json, async function postConnect(ctx) {
    const { uid, body } = await acceptPost(ctx);
    const upstream = config.upstreams.find((candidate) => candidate.name === body.upstream);
    if (!upstream) throw new InvalidRequestError('upstream must name a configured upstream');
    if (!needsUserConnection(upstream.auth)) throw new InvalidRequestError(`${upstream.displayName} needs no connection`);
    // A fresh update per click: each click is a new single-use authorization at the upstream.
    const state = await step(deps, uid, (handle) => handle.executeUpdate(connectUpstream, { args: [{ upstream: upstream.name }] }));
    const connection = state.connections[upstream.name];
    if (connection?.status === 'failed' || !state.authorizationRef) {
      throw new OAuthError(502, connection?.error ?? 'temporarily_unavailable', `${upstream.displayName} could not be reached: ${connection?.message ?? 'no authorization was prepared'}`);
    }
    const sealed = await store.getExchangeResult(state.authorizationRef);
    if (!sealed) throw new TemporarilyUnavailableError('the authorization was not prepared; try again', { status: 502 });
    ctx.body = { redirectTo: deps.cipher.open(sealed, state.authorizationRef) };
  });
}

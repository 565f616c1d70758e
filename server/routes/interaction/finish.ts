import type { Context } from 'koa';
import type { Interaction } from 'oidc-provider';
import { type ConsentFlowState, consentWorkflowId } from '../../../workflows/consent-flow/messages.js';
import { upstreamScope, upstreamsOfScope } from '../../mcp/resources.js';
import { mcpScope, offlineAccessScope, type OAuthServer } from '../../oauth/provider.js';
import type { GatewayStore } from '../../store/store.js';
import type { InteractionRouteDeps } from './deps.js';

/** What finishing an interaction needs. */
export type FinishDeps = Pick<InteractionRouteDeps, 'config' | 'oauth' | 'store' | 'audit'>;

/** The MCP endpoint the client asked a token for (RFC 8707 `resource`); the aggregate `/mcp` when it named none. */
function requestedResource(oauth: OAuthServer, interaction: Interaction): string {
  const resource = interaction.params.resource;
  const first = Array.isArray(resource) ? resource[0] : resource;
  return typeof first === 'string' && oauth.resources.parse(first) ? first : oauth.mcpResource;
}

/** The upstreams the request's upstream scopes name (SEP-2350) that its resource allows; `undefined` when it names none. */
function requestedUpstreams(oauth: OAuthServer, interaction: Interaction): string[] | undefined {
  const allowed = new Set(oauth.resources.upstreamScopesOf(requestedResource(oauth, interaction)));
  const named = [...new Set(upstreamsOfScope(String(interaction.params.scope ?? '')))].filter((name) => allowed.has(upstreamScope(name)));
  return named.length > 0 ? named : undefined;
}

/**
 * The upstreams a flow offers: exactly one for `/mcp/<upstream>`; for `/mcp`, those the request's
 * upstream scopes name, else all of them. A step-up (a request naming upstream scopes from a
 * browser already signed in) asks only about the upstreams this user has not yet granted the
 * client; the consent to the others stays, so the new grant is the union.
 */
export async function offeredUpstreams({ config, oauth, store }: Omit<FinishDeps, 'audit'>, interaction: Interaction): Promise<string[]> {
  const target = oauth.resources.parse(requestedResource(oauth, interaction));
  if (target?.kind === 'upstream') return [target.upstream];
  const requested = requestedUpstreams(oauth, interaction);
  if (!requested) return config.upstreams.map((upstream) => upstream.name);
  const userId = interaction.session?.accountId;
  const granted = userId ? ((await store.getConsent(userId, String(interaction.params.client_id)))?.upstreams ?? []) : [];
  const fresh = requested.filter((name) => !granted.includes(name));
  return fresh.length > 0 ? fresh : requested;
}

/** Saves the user's consent to this client: the flow decides only the upstreams it offered, consent to the others stays. */
async function rememberConsent(store: GatewayStore, state: ConsentFlowState, userId: string): Promise<void> {
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

/** The audit entry of a flow's outcome; one per flow whoever records it first (this route, a repeated request, or the expiry). */
async function recordOutcome({ audit }: FinishDeps, ctx: Context, state: ConsentFlowState): Promise<void> {
  const outcome = state.outcome;
  if (!outcome) return;
  const kind = outcome.kind === 'approved' ? (outcome.remembered ? 'consent.remembered' : 'consent.approved') : outcome.kind === 'denied' ? 'consent.denied' : 'consent.expired';
  await audit.record(
    { kind, userId: state.userId, clientId: state.client.clientId, flowId: consentWorkflowId(state.flowId), outcome: outcome.kind === 'approved' ? 'ok' : outcome.kind, sourceIp: ctx.ip || null },
    `flow-outcome:${state.flowId}`,
  );
}

/** The grant of an approved flow: the interaction's existing grant, or a new one, with the scopes the request asked for; returns its id. */
async function saveApprovedGrant(oauth: OAuthServer, interaction: Interaction, accountId: string, clientId: string): Promise<string> {
  const provider = oauth.provider;
  const grant = interaction.grantId ? ((await provider.Grant.find(interaction.grantId)) ?? undefined) : undefined;
  const target = grant ?? new provider.Grant({ accountId, clientId });
  target.addOIDCScope(mcpScope);
  // Asked for (and kept by the provider): the refresh token the client wants (SEP-2207).
  if (String(interaction.params.scope ?? '').split(' ').includes(offlineAccessScope)) target.addOIDCScope(offlineAccessScope);
  // The upstream scopes asked for ride along: the consent record decides what they reach.
  target.addResourceScope(requestedResource(oauth, interaction), [mcpScope, ...(requestedUpstreams(oauth, interaction) ?? []).map(upstreamScope)].join(' '));
  return target.save();
}

/** Ends the OAuth interaction for a finished flow; returns where the browser goes next. */
export async function finish(deps: FinishDeps, ctx: Context, interaction: Interaction, state: ConsentFlowState): Promise<string> {
  const provider = deps.oauth.provider;
  const outcome = state.outcome;
  await recordOutcome(deps, ctx, state);
  if (outcome?.kind === 'approved') {
    const grantId = await saveApprovedGrant(deps.oauth, interaction, outcome.userId, state.client.clientId);
    const redirectTo = await provider.interactionResult(ctx.req, ctx.res, { login: { accountId: outcome.userId }, consent: { grantId } }, { mergeWithLastSubmission: false });
    // Remembered only now that the authorization result is stored: a decision whose authorization
    // fails (another browser, an expired interaction) pre-approves nothing for later flows.
    if (!outcome.remembered) await rememberConsent(deps.store, state, outcome.userId);
    return redirectTo;
  }
  const description = outcome?.kind === 'expired' ? 'the consent request expired' : 'the user denied access';
  return provider.interactionResult(ctx.req, ctx.res, { error: 'access_denied', error_description: description }, { mergeWithLastSubmission: false });
}

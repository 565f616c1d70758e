import type { Context } from 'koa';
import type { Interaction } from 'oidc-provider';
import { type ConsentFlowState, consentWorkflowId } from '../../../workflows/consent-flow/messages.js';
import { upstreamOfToolScope } from '../../config/tool-scopes.js';
import { toolScopesOfScope, upstreamScope, upstreamsOfScope } from '../../mcp/resources.js';
import { mcpScope, offlineAccessScope, type OAuthServer } from '../../oauth/provider.js';
import type { ConsentRecord, GatewayStore } from '../../store/store.js';
import type { InteractionRouteDeps } from './deps.js';

/** What finishing an interaction needs. */
export type FinishDeps = Pick<InteractionRouteDeps, 'config' | 'oauth' | 'store' | 'audit'>;

/** The MCP endpoint the client asked a token for (RFC 8707 `resource`); the aggregate `/mcp` when it named none. */
function requestedResource(oauth: OAuthServer, interaction: Interaction): string {
  const resource = interaction.params.resource;
  const first = Array.isArray(resource) ? resource[0] : resource;
  return typeof first === 'string' && oauth.resources.parse(first) ? first : oauth.mcpResource;
}

/** The tool scopes (`toolScopes` of the config) the request asks for that its resource allows. */
function requestedToolScopes(oauth: OAuthServer, interaction: Interaction): string[] {
  const allowed = new Set(oauth.resources.toolScopesOf(requestedResource(oauth, interaction)));
  return [...new Set(toolScopesOfScope(String(interaction.params.scope ?? '')))].filter((scope) => allowed.has(scope));
}

/**
 * The upstreams the request's upstream scopes name (SEP-2350), and those its tool scopes belong
 * to, that its resource allows; `undefined` when it names none.
 */
function requestedUpstreams(oauth: OAuthServer, interaction: Interaction): string[] | undefined {
  const allowed = new Set(oauth.resources.upstreamScopesOf(requestedResource(oauth, interaction)));
  const owners = requestedToolScopes(oauth, interaction).map((scope) => upstreamOfToolScope(scope) ?? '');
  const named = [...new Set([...upstreamsOfScope(String(interaction.params.scope ?? '')), ...owners])].filter((name) => allowed.has(upstreamScope(name)));
  return named.length > 0 ? named : undefined;
}

/**
 * What a flow offers. Upstreams: exactly one for `/mcp/<upstream>`; for `/mcp`, those the
 * request's upstream and tool scopes name, else all of them. Scopes: the MCP scope and the tool
 * scopes asked for. A step-up (a request from a browser already signed in) asks only about what
 * this user has not yet granted the client: the upstreams not granted and those with a tool scope
 * not granted, and those tool scopes; the consent to the rest stays, so the new grant is the union.
 */
export async function offeredAccess({ config, oauth, store }: Omit<FinishDeps, 'audit'>, interaction: Interaction): Promise<{ upstreams: string[]; scopes: string[] }> {
  const userId = interaction.session?.accountId;
  const consent = userId ? await store.getConsent(userId, String(interaction.params.client_id)) : undefined;
  const toolScopes = requestedToolScopes(oauth, interaction);
  const newToolScopes = toolScopes.filter((scope) => !(consent?.scopes ?? []).includes(scope));
  const scopes = [mcpScope, ...(newToolScopes.length > 0 ? newToolScopes : toolScopes)];
  const target = oauth.resources.parse(requestedResource(oauth, interaction));
  if (target?.kind === 'upstream') return { upstreams: [target.upstream], scopes };
  const requested = requestedUpstreams(oauth, interaction);
  if (!requested) return { upstreams: config.upstreams.map((upstream) => upstream.name), scopes };
  const granted = consent?.upstreams ?? [];
  const widened = newToolScopes.map((scope) => upstreamOfToolScope(scope));
  const fresh = requested.filter((name) => !granted.includes(name) || widened.includes(name));
  return { upstreams: fresh.length > 0 ? fresh : requested, scopes };
}

/** The upstreams the user consents to once the flow is saved: the flow decides only those it offered, the others stay. */
function consentedAfter(earlier: ConsentRecord | undefined, state: ConsentFlowState): string[] {
  const kept = (earlier?.upstreams ?? []).filter((name) => !state.availableUpstreams.includes(name));
  return [...kept, ...state.chosenUpstreams];
}

/**
 * Saves the user's consent to this client: the upstreams of {@link consentedAfter}; the scopes
 * granted before and in this flow, tool scopes only of those upstreams.
 */
async function rememberConsent(store: GatewayStore, state: ConsentFlowState, userId: string, earlier: ConsentRecord | undefined): Promise<void> {
  const upstreams = consentedAfter(earlier, state);
  const scopes = [...new Set([...(earlier?.scopes ?? []), ...state.scopes])].filter((scope) => {
    const owner = upstreamOfToolScope(scope);
    return owner === undefined || upstreams.includes(owner);
  });
  await store.saveConsent({ userId, clientId: state.client.clientId, upstreams, scopes, flowId: state.flowId, grantedAt: new Date().toISOString() });
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

/**
 * The grant of an approved flow: the interaction's existing grant, or a new one, with the scopes the
 * request asked for, of its tool scopes `toolScopes` only; returns its id.
 */
async function saveApprovedGrant(oauth: OAuthServer, interaction: Interaction, accountId: string, clientId: string, toolScopes: string[]): Promise<string> {
  const provider = oauth.provider;
  const grant = interaction.grantId ? ((await provider.Grant.find(interaction.grantId)) ?? undefined) : undefined;
  const target = grant ?? new provider.Grant({ accountId, clientId });
  target.addOIDCScope(mcpScope);
  // Asked for (and kept by the provider): the refresh token the client wants (SEP-2207).
  if (String(interaction.params.scope ?? '').split(' ').includes(offlineAccessScope)) target.addOIDCScope(offlineAccessScope);
  // The upstream scopes asked for ride along: the consent record decides what they reach.
  // A tool scope rides along only once the user approved it (now or before) for an upstream consented to.
  target.addResourceScope(requestedResource(oauth, interaction), [mcpScope, ...(requestedUpstreams(oauth, interaction) ?? []).map(upstreamScope), ...toolScopes].join(' '));
  return target.save();
}

/** Ends the OAuth interaction for a finished flow; returns where the browser goes next. */
export async function finish(deps: FinishDeps, ctx: Context, interaction: Interaction, state: ConsentFlowState): Promise<string> {
  const provider = deps.oauth.provider;
  const outcome = state.outcome;
  await recordOutcome(deps, ctx, state);
  if (outcome?.kind === 'approved') {
    const earlier = await deps.store.getConsent(outcome.userId, state.client.clientId);
    const consented = outcome.remembered ? (earlier?.upstreams ?? []) : consentedAfter(earlier, state);
    const approved = new Set([...state.scopes, ...(earlier?.scopes ?? [])]);
    const toolScopes = requestedToolScopes(deps.oauth, interaction).filter((scope) => approved.has(scope) && consented.includes(upstreamOfToolScope(scope) ?? ''));
    const grantId = await saveApprovedGrant(deps.oauth, interaction, outcome.userId, state.client.clientId, toolScopes);
    const redirectTo = await provider.interactionResult(ctx.req, ctx.res, { login: { accountId: outcome.userId }, consent: { grantId } }, { mergeWithLastSubmission: false });
    // Remembered only now that the authorization result is stored: a decision whose authorization
    // fails (another browser, an expired interaction) pre-approves nothing for later flows.
    if (!outcome.remembered) await rememberConsent(deps.store, state, outcome.userId, earlier);
    return redirectTo;
  }
  const description = outcome?.kind === 'expired' ? 'the consent request expired' : 'the user denied access';
  return provider.interactionResult(ctx.req, ctx.res, { error: 'access_denied', error_description: description }, { mergeWithLastSubmission: false });
}

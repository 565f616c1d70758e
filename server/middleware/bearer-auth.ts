import type { Span } from '@opentelemetry/api';
import type { Context, Next } from 'koa';
import type { UpstreamConfig } from '../config.js';
import { InsufficientScopeError, InvalidTokenError, OAuthError } from '../errors.js';
import type { ToolCallGuard } from '../mcp/request-guards.js';
import { toolScopesOfScope, upstreamScope, upstreamsOfScope, type McpResourceTarget } from '../mcp/resources.js';
import { DEFAULT_TOOL_NAME_SEPARATOR, resolveToolName } from '../mcp/tool-names.js';
import { checkDpopProof, dpopAlgorithms, DpopProofError } from '../oauth/dpop-proof.js';
import { mcpScope, type OAuthServer } from '../oauth/provider.js';
import type { ConsentStore, StoreEvents } from '../store/store.js';
import { inSpan } from '../tracing.js';

/** Who is calling `/mcp`, after the token and the consent were checked. */
export interface McpCallerIdentity {
  userId: string;
  clientId: string;
  upstreams: { name: string; displayName: string; url: string }[];
}

/** A checked token: who calls, and the tool scopes it carries. */
interface CheckedCaller {
  caller: McpCallerIdentity;
  /** The token's tool scopes (`mcp:upstream:<name>:<suffix>`). */
  toolScopes: string[];
}

interface CachedCaller extends CheckedCaller {
  /** The protected resource the token is bound to. */
  resource: string;
  grantId: string;
  /** The DPoP key the token is bound to (RFC 9449 `cnf.jkt`), if it is. */
  jkt: string | undefined;
  /** Epoch ms after which the token and consent are read again. */
  until: number;
  /** The event channel's generation when the entry was filled: a newer one means events may have been missed. */
  generation: number;
}

/**
 * How long a checked token is trusted without reading the store again. A revoke or a withdrawn
 * consent anywhere in the fleet reaches every process as an event and clears its entries at once;
 * this bound only limits how long an entry lives when nothing happens.
 */
const cacheMs = 30_000;
const cacheLimit = 10_000;

/** A resolved prefixed tool name as an upstream name and the upstream's tool name. */
function resolved(tool: { upstream: { name: string }; tool: string } | undefined): { upstream: string; tool: string } | undefined {
  return tool && { upstream: tool.upstream.name, tool: tool.tool };
}

/** The MCP endpoint a request is for, set in `ctx.state.mcpEndpoint` by the router in front of {@link bearerAuth}. */
export interface McpEndpointTarget {
  resource: string;
  target: McpResourceTarget;
}

/**
 * Checks the bearer token on `/mcp` and `/mcp/<upstream>` (RFC 6750): a live access token of this
 * gateway, with the requested endpoint as its audience (RFC 8707) and the MCP scope, whose user
 * still consents to the client (for `/mcp/<upstream>`: to that upstream). Sets `ctx.state.caller`.
 * Failures answer 401/403 with a `WWW-Authenticate` challenge that names the endpoint's protected
 * resource metadata (RFC 9728 §5.1), so clients can start authorization.
 */
export function bearerAuth(deps: {
  oauth: OAuthServer;
  store: ConsentStore & StoreEvents;
  upstreams: UpstreamConfig[];
  /** `mcp.toolSeparator`: tells which upstream a tool called on `/mcp` belongs to. */
  toolSeparator?: string;
  log?: { warn(message: string, fields?: Record<string, unknown>): void };
}) {
  const challenge = (resource: string, extra = '') => `Bearer resource_metadata="${deps.oauth.resources.metadataUrl(resource)}", scope="${mcpScope}"${extra}`;
  const unauthorized = (resource: string, error: string | undefined, description: string) =>
    new OAuthError(401, error ?? 'invalid_token', description, {
      'WWW-Authenticate': challenge(resource, error ? `, error="${error}", error_description="${description}"` : ''),
    });

  /**
   * SEP-2350 step-up: 403 `insufficient_scope` naming the whole set the client should ask for next,
   * what its grant reaches (its upstreams and tool scopes) plus what the request needs, so a new
   * authorization keeps the old grant.
   */
  const stepUp = (resource: string, upstreams: readonly string[], toolScopes: readonly string[], description: string) => {
    const scope = [mcpScope, ...[...new Set(upstreams)].map(upstreamScope), ...new Set(toolScopes)].join(' ');
    return new InsufficientScopeError(description, {
      headers: { 'WWW-Authenticate': `Bearer resource_metadata="${deps.oauth.resources.metadataUrl(resource)}", scope="${scope}", error="insufficient_scope", error_description="${description}"` },
    });
  };

  // RFC 9449 §7.1: a refused DPoP request is challenged with the DPoP scheme.
  const dpopRefusal = (resource: string, error: 'invalid_token' | 'invalid_dpop_proof', description: string) =>
    new OAuthError(401, error, description, {
      // A quoted-string (RFC 9110 §5.6.4): the proof checker's messages may quote a claim name.
      'WWW-Authenticate': `DPoP resource_metadata="${deps.oauth.resources.metadataUrl(resource)}", algs="${dpopAlgorithms.join(' ')}", error="${error}", error_description="${description.replace(/["\\]/g, "'")}"`,
    });

  /**
   * The token's sender constraint (RFC 9449 §7): a DPoP-bound token only under the DPoP scheme
   * with a fresh proof of its key for this request, never as a bearer token; an unbound token only
   * as a bearer token, and not at all when `oauth.dpop.required`.
   */
  async function checkBinding(ctx: Context, scheme: 'bearer' | 'dpop', token: string, jkt: string | undefined, resource: string): Promise<void> {
    if (!jkt) {
      if (scheme === 'dpop') throw unauthorized(resource, 'invalid_token', 'the access token is not bound to a DPoP key: send it as "Authorization: Bearer <token>"');
      if (deps.oauth.dpopRequired) throw dpopRefusal(resource, 'invalid_token', 'this gateway accepts DPoP-bound access tokens only (RFC 9449)');
      return;
    }
    if (scheme === 'bearer') throw dpopRefusal(resource, 'invalid_token', 'the access token is bound to a DPoP key: send it as "Authorization: DPoP <token>" with a DPoP proof');
    const proof = ctx.get('dpop');
    if (!proof || proof.includes(',')) throw dpopRefusal(resource, 'invalid_dpop_proof', 'one DPoP proof (the DPoP header) is required with a DPoP-bound access token');
    try {
      const checked = await checkDpopProof(proof, { method: ctx.method, url: resource, accessToken: token });
      if (checked.jkt !== jkt) throw new DpopProofError('the DPoP proof is signed with another key than the access token is bound to');
      // Each proof once, across the fleet: the provider's replay records live in the store.
      if (!(await deps.oauth.provider.ReplayDetection.unique(`dpop-resource:${jkt}`, checked.jti, Math.floor(Date.now() / 1000) + 120))) {
        throw new DpopProofError('the DPoP proof was used before');
      }
    } catch (error) {
      if (error instanceof DpopProofError) throw dpopRefusal(resource, 'invalid_dpop_proof', error.message);
      throw error;
    }
  }

  // The hot path: a warm token costs one Map lookup (DESIGN.md, decision 6).
  const cache = new Map<string, CachedCaller>();
  const { events } = deps.store;
  const forgetGrant = (grantId: string) => {
    for (const [token, entry] of cache) if (entry.grantId === grantId) cache.delete(token);
  };
  const forgetCaller = (userId: string, clientId: string) => {
    for (const [token, entry] of cache) if (entry.caller.userId === userId && entry.caller.clientId === clientId) cache.delete(token);
  };
  // Counts revocations heard; a check whose store reads overlapped one is not cached.
  let revocations = 0;
  events.subscribe((event) => {
    if (event.kind === 'grant-revoked') forgetGrant(event.grantId);
    else if (event.kind === 'consent-withdrawn') forgetCaller(event.userId, event.clientId);
    else return;
    revocations += 1;
  });
  const announce = (event: Parameters<typeof events.publish>[0]) =>
    events.publish(event).catch((error: unknown) => deps.log?.warn('could not announce a revocation to the other processes', { error: String(error) }));
  // Whatever the provider revokes here, every process must stop trusting: announced by grant id
  // (a revoked access token's grant too), so no token value leaves this process.
  const provider = deps.oauth.provider as unknown as { on(event: string, listener: (...args: unknown[]) => void): void };
  const revokedGrant = (grantId: unknown) => {
    if (typeof grantId !== 'string') return;
    forgetGrant(grantId);
    void announce({ kind: 'grant-revoked', grantId });
  };
  provider.on('grant.revoked', (_ctx: unknown, grantId: unknown) => revokedGrant(grantId));
  provider.on('grant.destroyed', (grant: unknown) => revokedGrant((grant as { jti?: string }).jti));
  provider.on('access_token.destroyed', (token: unknown) => {
    cache.delete(String((token as { jti?: string }).jti));
    revokedGrant((token as { grantId?: string }).grantId);
  });

  /** The caller behind the request's token, from the cache or the store; throws the refusal. */
  async function check(ctx: Context, span: Span): Promise<CheckedCaller> {
    const endpoint = (ctx.state as { mcpEndpoint?: McpEndpointTarget }).mcpEndpoint ?? { resource: deps.oauth.mcpResource, target: { kind: 'aggregate' } };
    const { resource, target } = endpoint;
    const header = ctx.get('authorization');
    const match = /^(Bearer|DPoP)\s+([A-Za-z0-9\-._~+/]+=*)$/i.exec(header);
    const value = match?.[2];
    if (!match?.[1] || !value) {
      // RFC 6750 §3.1: no error code when the request carried no credentials at all.
      if (!header) throw new InvalidTokenError('an access token is required', { headers: { 'WWW-Authenticate': challenge(resource) } });
      throw unauthorized(resource, 'invalid_request', 'the Authorization header must be "Bearer <token>" or "DPoP <token>"');
    }
    const scheme = match[1].toLowerCase() === 'dpop' ? 'dpop' : 'bearer';
    const cached = cache.get(value);
    if (cached && cached.until > Date.now() && cached.resource === resource && cached.generation === events.generation() && events.live()) {
      span.setAttribute('gateway.token_cached', true);
      await checkBinding(ctx, scheme, value, cached.jkt, resource);
      return cached;
    }
    span.setAttribute('gateway.token_cached', false);
    // Taken before the store reads: a revocation heard while they run may make them stale.
    const generation = events.generation();
    const revocationsBefore = revocations;
    const token = await deps.oauth.provider.AccessToken.find(value);
    if (!token || token.isExpired) {
      cache.delete(value);
      throw unauthorized(resource, 'invalid_token', 'the access token is unknown, revoked or expired');
    }
    const audiences = Array.isArray(token.aud) ? token.aud : token.aud ? [token.aud] : [];
    if (!audiences.includes(resource)) throw unauthorized(resource, 'invalid_token', `the access token was issued for another resource, not ${resource}`);
    await checkBinding(ctx, scheme, value, token.jkt, resource);
    if (!(token.scope ?? '').split(' ').includes(mcpScope)) {
      throw new InsufficientScopeError(`the access token lacks the ${mcpScope} scope`, {
        headers: { 'WWW-Authenticate': challenge(resource, `, error="insufficient_scope", error_description="the access token lacks the ${mcpScope} scope"`) },
      });
    }
    const consent = await deps.store.getConsent(token.accountId, token.clientId);
    if (!consent) throw unauthorized(resource, 'invalid_token', 'the user no longer consents to this client');
    // What the token reaches: the upstreams its upstream scopes name that the user still consents
    // to; a token without upstream scopes reaches every consented upstream.
    const tokenUpstreams = upstreamsOfScope(token.scope);
    const granted = consent.upstreams.filter((name) => tokenUpstreams.length === 0 || tokenUpstreams.includes(name));
    const wanted = target.kind === 'upstream' ? [target.upstream] : granted;
    const toolScopes = toolScopesOfScope(token.scope);
    if (target.kind === 'upstream' && !granted.includes(target.upstream)) {
      throw stepUp(resource, [target.upstream], toolScopes, `the user has not granted this client ${target.upstream}`);
    }
    const caller: McpCallerIdentity = {
      userId: token.accountId,
      clientId: token.clientId,
      upstreams: deps.upstreams
        .filter((upstream) => wanted.includes(upstream.name))
        .map((upstream) => ({ name: upstream.name, displayName: upstream.displayName, url: upstream.mcpUrl })),
    };
    if (cache.size >= cacheLimit) cache.clear();
    if (revocationsBefore === revocations) cache.set(value, { caller, toolScopes, resource, grantId: token.grantId, jkt: token.jkt, until: Math.min(Date.now() + cacheMs, token.exp * 1000), generation });
    return { caller, toolScopes };
  }

  /**
   * A `tools/call` on `/mcp` of a tool whose upstream the token does not reach is a step-up (SEP-2350),
   * told by the request's `Mcp-Method` and `Mcp-Name` headers (MCP 2026-07-28); answered before
   * anything is forwarded. Without the headers the call goes on and finds no such tool.
   */
  function checkToolCall(ctx: Context, { caller, toolScopes }: CheckedCaller): void {
    const endpoint = (ctx.state as { mcpEndpoint?: McpEndpointTarget }).mcpEndpoint;
    if (endpoint?.target.kind !== 'aggregate' || ctx.method !== 'POST' || ctx.get('mcp-method') !== 'tools/call') return;
    const tool = resolveToolName(ctx.get('mcp-name'), deps.upstreams, separator);
    if (!tool || caller.upstreams.some((upstream) => upstream.name === tool.upstream.name)) return;
    throw stepUp(endpoint.resource, [...caller.upstreams.map((upstream) => upstream.name), tool.upstream.name], toolScopes, `the user has not granted this client ${tool.upstream.name}`);
  }

  const separator = deps.toolSeparator ?? DEFAULT_TOOL_NAME_SEPARATOR;
  const scopedTools = new Map(deps.upstreams.filter((upstream) => upstream.toolScopes).map((upstream) => [upstream.name, upstream.toolScopes!]));

  /**
   * The check the MCP endpoints run on each `tools/call` once they read its body (either era, the
   * name as the endpoint shows it): a tool the config gives `toolScopes` needs them all in the token,
   * else 403 `insufficient_scope` naming the token's whole set plus the missing ones (SEP-2350).
   * Undefined when no upstream the caller reaches has tool scopes.
   */
  function toolCallGuard(ctx: Context, { caller, toolScopes }: CheckedCaller): ToolCallGuard | undefined {
    const endpoint = (ctx.state as { mcpEndpoint?: McpEndpointTarget }).mcpEndpoint ?? { resource: deps.oauth.mcpResource, target: { kind: 'aggregate' } };
    if (!caller.upstreams.some((upstream) => scopedTools.has(upstream.name))) return undefined;
    const { resource, target } = endpoint;
    return (name) => {
      const tool = target.kind === 'upstream' ? { upstream: target.upstream, tool: name } : resolved(resolveToolName(name, caller.upstreams, separator));
      const needed = tool ? scopedTools.get(tool.upstream)?.[tool.tool] : undefined;
      const missing = (needed ?? []).filter((scope) => !toolScopes.includes(scope));
      if (!tool || missing.length === 0) return;
      throw stepUp(resource, caller.upstreams.map((upstream) => upstream.name), [...toolScopes, ...missing], `calling ${tool.tool} of ${tool.upstream} needs ${missing.join(' ')}`);
    };
  }

  const middleware = async function requireBearer(ctx: Context, next: Next): Promise<void> {
    // The span ends before the forward: its time is the check's alone.
    const checked = await inSpan('gateway.bearer_check', {}, async (span) => {
      const found = await check(ctx, span);
      checkToolCall(ctx, found);
      span.setAttributes({ 'enduser.id': found.caller.userId, 'gateway.client_id': found.caller.clientId });
      return found;
    });
    ctx.state.caller = checked.caller;
    const guard = toolCallGuard(ctx, checked);
    if (guard) (ctx.state as { toolCallGuard?: ToolCallGuard }).toolCallGuard = guard;
    await next();
  };

  /** Drops cached checks of one user and client (after their consent was revoked), here and in every other process. */
  const forgetConsent = (userId: string, clientId: string) => {
    forgetCaller(userId, clientId);
    void announce({ kind: 'consent-withdrawn', userId, clientId });
  };
  return Object.assign(middleware, { forgetConsent });
}

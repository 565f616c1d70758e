import { randomBytes } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { markNeedsReconnect, requireScopes, type UpstreamGrantInput, upstreamGrantWorkflowId } from '../workflows/upstream-grant/messages.js';
import { needsUserConnection, type UpstreamConfig } from './config.js';
import type { TokenCipher } from './crypto/token-cipher.js';
import type { Logger } from './log.js';
import { countRefreshWaiting } from './metrics.js';
import type { UpstreamChallenge } from './mcp/bearer-challenge.js';
import { JsonRpcError } from './mcp/json-rpc.js';
import type { McpCaller, McpUpstream } from './mcp/types.js';
import type { ElicitationStore, UpstreamTokenRecord, UpstreamTokenStore } from './store/store.js';
import { ensureUpstreamGrant, isTemporalUnreachable, requestUpstreamRefresh, withTemporalDeadline } from './temporal/client.js';
import { inSpan } from './tracing.js';
import type { brokeredTokens, UpstreamRequest } from './upstream-brokered/index.js';
import { upstreamTokenPresentation } from './upstream-dpop.js';

/** Raised when the caller has no usable connection to an upstream that needs one. */
export class UpstreamNotConnectedError extends Error {
  override name = 'UpstreamNotConnectedError';
}

/** What {@link upstreamTokens} needs. Without `temporal`, tokens are used as stored and never refreshed. */
export interface UpstreamTokenDeps {
  store: UpstreamTokenStore & ElicitationStore;
  cipher: TokenCipher;
  upstreams: UpstreamConfig[];
  /** `requestTimeoutMs` bounds each request's Temporal calls (refresh, reconnect, step-up). */
  temporal?: { client: Client; taskQueue: string; log: Logger; requestTimeoutMs?: number };
  /** The gateway's public URL: with it, a missing connection answers with a URL elicitation link. */
  publicUrl?: string;
  /** Upstreams reached with the user's IdP sign-in instead of a connection of their own (token exchange, ID-JAG). */
  brokered?: ReturnType<typeof brokeredTokens>;
}

/** JSON-RPC error code of a URL elicitation the client must complete first (MCP 2025-11-25, SEP-1036). */
export const urlElicitationRequired = -32042;

/** How long an elicitation link works. */
const elicitationTtlSeconds = 600;

/** JSON-RPC error of an MCP request whose Temporal calls did not answer in time: the client may send it again. */
export class TemporalUnavailableRpcError extends JsonRpcError {
  constructor() {
    super(-32603, 'The gateway cannot renew this connection right now (its workflow service is briefly unavailable); try again in a moment.');
  }
}

/**
 * Runs a Temporal call made inside an MCP request under the request deadline: a Temporal that is
 * down becomes {@link TemporalUnavailableRpcError} instead of a call that waits out the client's retries.
 */
async function bounded<T>(temporal: NonNullable<UpstreamTokenDeps['temporal']>, call: () => Promise<T>): Promise<T> {
  try {
    return temporal.requestTimeoutMs ? await withTemporalDeadline(temporal.client, temporal.requestTimeoutMs, call) : await call();
  } catch (error) {
    if (isTemporalUnreachable(error)) throw new TemporalUnavailableRpcError();
    throw error;
  }
}

/** A token this close to its expiry (seconds) is refreshed before use: it could expire in flight. */
const expirySkewSeconds = 2;

function grantInput(tokens: UpstreamTokenRecord): UpstreamGrantInput {
  return {
    userId: tokens.userId,
    upstream: tokens.upstream,
    version: tokens.version,
    expiresAt: tokens.expiresAt,
    refreshable: tokens.refreshToken !== null,
  };
}

/**
 * The caller's upstream credentials for `/mcp`: `headers` gives the `Authorization` header for one
 * request (the caller's own upstream access token, opened from the store, never the MCP client's
 * token: no token passthrough), asking the user's `upstreamGrant` workflow for a refresh first when
 * the stored token has expired; `unauthorized` handles an upstream's 401 (one refresh and one retry,
 * then the grant is marked as needing a reconnect). The store is the read model; Temporal is only
 * consulted when the token must change (DESIGN.md, decision 6).
 */
export function upstreamTokens(deps: UpstreamTokenDeps) {
  /** Grants known to have a running workflow (started, or found running) in this process. */
  const ensured = new Set<string>();
  const presentation = upstreamTokenPresentation(deps.cipher);

  /** Whether `sent` presented the access token `tokens` holds now (as `Bearer` or `DPoP`). */
  function presented(sent: Record<string, string>, tokens: UpstreamTokenRecord): boolean {
    const token = presentation.accessToken(tokens);
    return sent.Authorization === `Bearer ${token}` || sent.Authorization === `DPoP ${token}`;
  }

  function needsToken(upstream: McpUpstream): boolean {
    const config = deps.upstreams.find((candidate) => candidate.name === upstream.name);
    return Boolean(config && needsUserConnection(config.auth));
  }

  /** When each connection's "last used" was last written; written at most once a minute. */
  const touched = new Map<string, number>();
  function touch(tokens: UpstreamTokenRecord): void {
    const key = `${tokens.userId}\n${tokens.upstream}`;
    const now = Date.now();
    if ((touched.get(key) ?? 0) > now - 60_000) return;
    touched.set(key, now);
    if (touched.size > 10_000) touched.clear();
    deps.store.touchUpstreamTokens(tokens.userId, tokens.upstream, new Date(now).toISOString()).catch(() => touched.delete(key));
  }

  /** Open elicitations by user × client × upstream, so repeated calls share one link. */
  const openElicitations = new Map<string, { id: string; expiresAt: number }>();

  /**
   * Refuses a call that needs a connection the user does not have (or must renew) with a URL
   * elicitation: a link to `/connect` that only this user's signed-in browser can use.
   */
  async function notConnected(caller: McpCaller, upstream: McpUpstream, why: string, access: 'connect' | 'more' = 'connect'): Promise<never> {
    if (!deps.publicUrl) throw new UpstreamNotConnectedError(why);
    const key = `${caller.userId}\n${caller.clientId}\n${upstream.name}`;
    const now = Math.floor(Date.now() / 1000);
    let open = openElicitations.get(key);
    if (!open || open.expiresAt - 60 < now) {
      open = { id: randomBytes(24).toString('base64url'), expiresAt: now + elicitationTtlSeconds };
      await deps.store.createElicitation({ id: open.id, userId: caller.userId, clientId: caller.clientId, upstream: upstream.name, createdAt: now, expiresAt: open.expiresAt, completedAt: null });
      if (openElicitations.size > 10_000) openElicitations.clear();
      openElicitations.set(key, open);
    }
    const ask = access === 'more' ? `Grant ${upstream.displayName} the access this tool needs.` : `Connect ${upstream.displayName} to use its tools.`;
    throw new JsonRpcError(urlElicitationRequired, ask, {
      elicitations: [
        {
          mode: 'url',
          elicitationId: open.id,
          url: `${deps.publicUrl}/connect?elicitationId=${open.id}`,
          message: access === 'more' ? `Grant ${upstream.displayName} more access to continue.` : `Connect your ${upstream.displayName} account to continue.`,
        },
      ],
    });
  }

  async function connectedTokens(caller: McpCaller, upstream: McpUpstream): Promise<UpstreamTokenRecord> {
    const tokens = await deps.store.getUpstreamTokens(caller.userId, upstream.name);
    if (!tokens || tokens.status !== 'connected') return notConnected(caller, upstream, `${caller.userId} has not connected ${upstream.displayName}`);
    openElicitations.delete(`${caller.userId}\n${caller.clientId}\n${upstream.name}`);
    return tokens;
  }

  /** Starts the grant workflow of a user who connected before grant workflows existed; once per process. */
  function ensureGrant(tokens: UpstreamTokenRecord): void {
    const temporal = deps.temporal;
    const key = upstreamGrantWorkflowId(tokens.userId, tokens.upstream);
    if (!temporal || ensured.has(key)) return;
    ensured.add(key);
    ensureUpstreamGrant(temporal.client, temporal.taskQueue, grantInput(tokens)).catch((error: unknown) => {
      ensured.delete(key);
      temporal.log.warn('could not start the grant workflow', { upstream: tokens.upstream, error: String(error) });
    });
  }

  /**
   * What this process has asked of grant workflows and not yet seen answered, by workflow id, what
   * was asked and the token version it is about. Callers that found the same token and ask the same
   * join the one request: Temporal admits only a few updates in flight per workflow
   * (`history.maxInFlightUpdates`, 10 by default) and refuses the rest, which the client then
   * retries after a second or more, so a burst of requests sending one update each would wait (or
   * run out of time) for nothing. The workflow answers the same to each of them anyway.
   */
  const asking = new Map<string, Promise<unknown>>();

  function joined<T>(key: string, ask: () => Promise<T>): Promise<T> {
    let shared = asking.get(key) as Promise<T> | undefined;
    if (!shared) {
      shared = (async () => ask())().finally(() => asking.delete(key));
      asking.set(key, shared);
    }
    return shared;
  }

  /** Asks the grant workflow to replace the token of `tokens.version`; returns what the store holds afterwards. */
  async function refreshed(tokens: UpstreamTokenRecord, reason: string): Promise<UpstreamTokenRecord | undefined> {
    const temporal = deps.temporal;
    if (!temporal) return tokens;
    const workflowId = upstreamGrantWorkflowId(tokens.userId, tokens.upstream);
    countRefreshWaiting(1);
    try {
      return await joined(`${workflowId}\nrefresh\n${tokens.version}`, async () => {
        await bounded(temporal, () => requestUpstreamRefresh(temporal.client, temporal.taskQueue, grantInput(tokens), { reason, seenAccessTokenVersion: tokens.version }));
        ensured.add(workflowId);
        return deps.store.getUpstreamTokens(tokens.userId, tokens.upstream);
      });
    } finally {
      countRefreshWaiting(-1);
    }
  }

  return {
    async headers(caller: McpCaller, upstream: McpUpstream, request?: UpstreamRequest): Promise<Record<string, string>> {
      if (deps.brokered?.handles(upstream)) return deps.brokered.headers(caller, upstream, request);
      if (!needsToken(upstream)) return {};
      return inSpan('gateway.upstream_token', { 'gateway.upstream': upstream.name }, async (span) => {
        let tokens = await connectedTokens(caller, upstream);
        const expired = tokens.expiresAt !== null && tokens.expiresAt - Date.now() / 1000 <= expirySkewSeconds && tokens.refreshToken !== null;
        span.setAttribute('gateway.token_refreshed', expired);
        if (expired) {
          const fresh = await refreshed(tokens, 'expired before use');
          if (!fresh || fresh.status !== 'connected') return notConnected(caller, upstream, `${caller.userId} has to reconnect ${upstream.displayName}`);
          tokens = fresh;
        } else {
          ensureGrant(tokens);
        }
        touch(tokens);
        return presentation.headers(tokens, upstream.url, request);
      });
    },

    /**
     * The upstream answered 401 (`challenge`) to a request sent with `sent`. A DPoP nonce
     * challenge (RFC 9449 §9) to a bound token: the nonce is kept and the request sent once more,
     * the token untouched. Otherwise, first time (`retried` false): a refresh unless the token
     * moved on already; true means "send it again". After the retry also failed: the grant is
     * marked as needing a reconnect.
     */
    async unauthorized(caller: McpCaller, upstream: McpUpstream, sent: Record<string, string>, retried: boolean, challenge?: UpstreamChallenge): Promise<boolean> {
      if (deps.brokered?.handles(upstream)) return deps.brokered.unauthorized(caller, upstream, sent, retried);
      if (!needsToken(upstream)) return false;
      const tokens = await deps.store.getUpstreamTokens(caller.userId, upstream.name);
      if (!tokens || tokens.status !== 'connected') return false;
      if (presentation.nonceRequired(tokens, upstream.url, sent, challenge)) return !retried;
      const temporal = deps.temporal;
      if (!temporal) return false;
      // Another request replaced the refused token meanwhile: the retry uses the new one.
      if (!presented(sent, tokens)) return !retried;
      if (!retried) {
        await refreshed(tokens, 'the upstream answered 401');
        return true;
      }
      const workflowId = upstreamGrantWorkflowId(tokens.userId, tokens.upstream);
      await joined(`${workflowId}\nreconnect\n${tokens.version}`, () =>
        bounded(temporal, () =>
          temporal.client.workflow.getHandle(workflowId).executeUpdate(markNeedsReconnect, {
            args: [{ reason: 'the upstream refused the token (HTTP 401)', seenAccessTokenVersion: tokens.version }],
          }),
        ),
      );
      temporal.log.warn('upstream refuses the token; the user has to reconnect', { upstream: upstream.name });
      return false;
    },

    /**
     * The upstream answered 403 `insufficient_scope` naming `challenged` to a request sent with
     * `sent` (step-up, MCP 2026-07-28 Authorization §Scope Challenge Handling). The user's grant
     * workflow records the accumulated scopes (those granted, configured and asked for: SEP-2350) and
     * the call is answered with the connect link, whose authorization asks for all of them. True
     * means "send it again" (a newer token is there already). Throws the URL elicitation, or a
     * JSON-RPC error once the upstream was asked for the same scopes too often.
     */
    async insufficientScope(caller: McpCaller, upstream: McpUpstream, sent: Record<string, string>, challenged: string[]): Promise<boolean> {
      const temporal = deps.temporal;
      const config = deps.upstreams.find((candidate) => candidate.name === upstream.name);
      if (!temporal || !config || !needsUserConnection(config.auth)) return false;
      const tokens = await deps.store.getUpstreamTokens(caller.userId, upstream.name);
      if (!tokens || tokens.status !== 'connected') return false;
      if (!presented(sent, tokens)) return true;
      const scopes = [...new Set([...tokens.scopes, ...config.scopes, ...challenged])].sort();
      const workflowId = upstreamGrantWorkflowId(tokens.userId, tokens.upstream);
      const answer = await joined(`${workflowId}\nscopes\n${tokens.version}\n${scopes.join(' ')}`, () =>
        bounded(temporal, async () => {
          await ensureUpstreamGrant(temporal.client, temporal.taskQueue, grantInput(tokens));
          return temporal.client.workflow.getHandle(workflowId).executeUpdate(requireScopes, {
            args: [{ scopes, seenAccessTokenVersion: tokens.version }],
          });
        }),
      );
      if (answer.outcome === 'retry') return true;
      if (answer.outcome === 'refused') {
        throw new JsonRpcError(-32603, `${upstream.displayName} still refuses: it asks for access (${answer.scopes.join(' ')}) that was not granted.`);
      }
      temporal.log.info('upstream asks for more scopes; the user authorizes them', { upstream: upstream.name });
      return notConnected(caller, upstream, `${upstream.displayName} needs more access`, 'more');
    },
  };
}

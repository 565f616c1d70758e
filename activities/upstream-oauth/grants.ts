import { createHash, randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/activity';
import * as oauth from 'oauth4webapi';
import { upstreamTokenLabel, type StoredDpopKey } from '../../server/store/sealed-labels.js';
import type { UpstreamAuthorizationStore, UpstreamTokenRecord, UpstreamTokenStatus, UpstreamTokenStore } from '../../server/store/store.js';
import { createClientAuth, type ClientAuthDeps } from './client-auth.js';
import { createDpopKeys } from './dpop.js';
import { createDiscovery, endpointOptions, type DiscoveredUrlFetch, type OAuthUpstream, type UpstreamSettings } from './discovery.js';
import { withUpstreamErrors } from './errors.js';

/** What the upstream OAuth activities need. */
export interface UpstreamOAuthDeps extends ClientAuthDeps {
  store: UpstreamAuthorizationStore & UpstreamTokenStore;
  upstreams: UpstreamSettings[];
  /** Test seams at the points where a crash matters most. */
  hooks?: { afterCodeExchange?(): Promise<void> | void };
  /** The address guard for URLs that upstreams' metadata documents name (the worker passes it). */
  discoveredFetch?: DiscoveredUrlFetch;
}

/** Connection result as the workflow may see it: metadata only, never a token. */
export interface UpstreamConnection {
  upstream: string;
  status: 'connected';
  scopes: string[];
  /** Epoch seconds, or null. */
  expiresAt: number | null;
}

const authorizationTtlSeconds = 600;

const sha256 = (value: string) => createHash('sha256').update(value).digest('base64url');
const now = () => Math.floor(Date.now() / 1000);

/** Error type of a grant whose authorization server is no longer the one the upstream names (SEP-2352): only a reconnect helps. */
export const authorizationServerChanged = 'authorization_server_changed';

/**
 * Refuses to use tokens at an authorization server other than the one that issued them (MCP
 * 2026-07-28 Authorization, SEP-2352): neither refresh nor revocation sends them to a new one.
 * Tokens stored before the issuer was recorded are taken as issued by the current server.
 */
function assertBoundTo(as: oauth.AuthorizationServer, tokens: UpstreamTokenRecord): void {
  if (tokens.issuer !== undefined && tokens.issuer !== as.issuer) {
    throw ApplicationFailure.nonRetryable(
      `${tokens.upstream} now names another authorization server (${as.issuer}) than the one that issued the tokens (${tokens.issuer}); reconnect`,
      authorizationServerChanged,
    );
  }
}

/** Whether a token response's access token is bound to the proof's key (`token_type` `DPoP`, RFC 9449 §5). */
function isDpopBound(tokens: oauth.TokenEndpointResponse): boolean {
  return tokens.token_type.toLowerCase() === 'dpop';
}

/** The RFC 8707 `resource` of token requests, for upstreams configured to send it. */
function resourceParameter(resource: string | undefined) {
  return resource ? { additionalParameters: { resource } } : {};
}

/** The upstream OAuth grants: authorization code with PKCE (RFC 6749 §4.1, RFC 7636), refresh (§6), revocation (RFC 7009). */
export function createGrants(deps: UpstreamOAuthDeps) {
  const authorizationServer = createDiscovery(deps.discoveredFetch);
  const upstreamClient = createClientAuth(deps);
  const dpopKeys = createDpopKeys(deps.cipher);

  /** The RFC 8707 `resource` to send, for upstreams configured to: as the resource metadata publishes it, else the MCP URL. */
  function resourceOf(upstream: OAuthUpstream): string | undefined {
    return upstream.auth.resource ? (authorizationServer.publishedResource(upstream) ?? upstream.mcpUrl) : undefined;
  }

  function upstreamConfig(name: string): OAuthUpstream {
    const upstream = deps.upstreams.find((candidate) => candidate.name === name);
    if (!upstream) throw ApplicationFailure.nonRetryable(`no upstream named ${name}`, 'invalid_request');
    if (upstream.auth.type !== 'oauth') throw ApplicationFailure.nonRetryable(`${name} needs no authorization`, 'invalid_request');
    return upstream as OAuthUpstream;
  }

  return {
    /**
     * Creates a single-use authorization at the upstream (PKCE S256, fresh `state`, `resource`) and
     * stores the authorization URL sealed; returns only a reference, so no state or verifier reaches
     * workflow history.
     */
    async prepareUpstreamAuthorization(input: { flowId: string; upstream: string; userId: string }): Promise<{ authorizationRef: string }> {
      const upstream = upstreamConfig(input.upstream);
      return withUpstreamErrors(upstream.name, async () => {
        const as = await authorizationServer(upstream, { fresh: true });
        const { client: oauthClient } = await upstreamClient(upstream, as);
        if (!as.authorization_endpoint) throw ApplicationFailure.nonRetryable(`${upstream.name} has no authorization endpoint`, 'invalid_response');
        const verifier = oauth.generateRandomCodeVerifier();
        const state = oauth.generateRandomState();
        const url = new URL(as.authorization_endpoint);
        url.searchParams.set('response_type', 'code');
        url.searchParams.set('client_id', oauthClient.client_id);
        url.searchParams.set('redirect_uri', deps.redirectUri);
        url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(verifier));
        url.searchParams.set('code_challenge_method', 'S256');
        url.searchParams.set('state', state);
        // Scopes accumulate (MCP 2026-07-28, SEP-2350): the configured ones, those granted before, those a step-up asked for.
        const existing = await deps.store.getUpstreamTokens(input.userId, upstream.name);
        const configured = upstream.scopes.length > 0 ? upstream.scopes : authorizationServer.suggestedScopes(upstream);
        const scopes = [...new Set([...configured, ...(existing?.scopes ?? []), ...(existing?.requiredScopes ?? [])])];
        if (scopes.length > 0) url.searchParams.set('scope', scopes.join(' '));
        const resource = resourceOf(upstream);
        if (resource) url.searchParams.set('resource', resource);
        const stateHash = sha256(state);
        await deps.store.createUpstreamAuthorization({
          stateHash,
          flowId: input.flowId,
          upstream: upstream.name,
          userId: input.userId,
          codeVerifier: deps.cipher.seal(verifier, `upstream_authorizations:${stateHash}`),
          redirectUri: deps.redirectUri,
          code: null,
          callback: null,
          expiresAt: now() + authorizationTtlSeconds,
          usedAt: null,
          // The callback route refuses a response (a code or an error) that does not name this server (RFC 9207).
          issuer: as.issuer,
          issRequired: as.authorization_response_iss_parameter_supported === true,
        });
        const authorizationRef = `authorize:${randomUUID()}`;
        await deps.store.putExchangeResult(authorizationRef, deps.cipher.seal(url.href, authorizationRef), new Date().toISOString());
        return { authorizationRef };
      });
    },

    /**
     * Exchanges the code of a completed upstream authorization and stores the user's tokens sealed.
     * Not idempotent at the upstream, so the raw response is stored under a key first and a retried
     * attempt continues from it instead of exchanging again.
     */
    async exchangeUpstreamCode(input: { flowId: string; upstream: string; stateHash: string }): Promise<UpstreamConnection> {
      const upstream = upstreamConfig(input.upstream);
      const key = `exchange:${input.flowId}:${input.upstream}:${input.stateHash}`;
      const pending = await deps.store.getUpstreamAuthorization(input.stateHash);
      if (!pending || pending.flowId !== input.flowId || pending.upstream !== input.upstream || !pending.code || !pending.callback) {
        throw ApplicationFailure.nonRetryable('no completed authorization for this connection', 'invalid_request');
      }
      const sealedCallback = pending.callback;
      const earlier = await deps.store.getExchangeResult(key);
      // The grant's DPoP key rides along (sealed with the rest), so a retried attempt binds the same key.
      type Exchanged = oauth.TokenEndpointResponse & { issuer: string; dpopKey?: oauth.JsonObject };
      const exchanged = await withUpstreamErrors(upstream.name, async (): Promise<Exchanged> => {
        if (earlier) return JSON.parse(deps.cipher.open(earlier, key)) as Exchanged;
        const as = await authorizationServer(upstream);
        const { client: oauthClient, auth } = await upstreamClient(upstream, as);
        const callback = new URLSearchParams(deps.cipher.open(sealedCallback, `upstream_authorizations:${input.stateHash}:callback`));
        // The state was checked by the callback route (by its hash); iss (RFC 9207) is checked here.
        const parameters = oauth.validateAuthResponse(as, oauthClient, callback, oauth.skipStateCheck);
        const verifier = deps.cipher.open(pending.codeVerifier, `upstream_authorizations:${input.stateHash}`);
        // A key per grant (RFC 9449): a reconnect binds its tokens to a new one.
        const dpop = await dpopKeys.create(upstream, as);
        const tokenEndpoint = as.token_endpoint ?? upstream.mcpUrl;
        const tokens = await dpopKeys.tokenRequest(
          dpop,
          tokenEndpoint,
          (DPoP) =>
            oauth.authorizationCodeGrantRequest(as, oauthClient, auth, parameters, pending.redirectUri, verifier, {
              ...endpointOptions(as, tokenEndpoint),
              ...resourceParameter(resourceOf(upstream)),
              ...(DPoP ? { DPoP } : {}),
            }),
          (response) => oauth.processAuthorizationCodeResponse(as, oauthClient, response),
        );
        // Kept only when the token is bound to it; an authorization server that ignored the proof issued a Bearer token.
        const answer: Exchanged = { ...tokens, issuer: as.issuer, ...(dpop && isDpopBound(tokens) ? { dpopKey: dpop.stored as unknown as oauth.JsonObject } : {}) };
        await deps.store.putExchangeResult(key, deps.cipher.seal(JSON.stringify(answer), key), new Date().toISOString());
        await deps.hooks?.afterCodeExchange?.();
        return answer;
      });
      const { issuer, dpopKey, ...tokens } = exchanged;
      const at = new Date().toISOString();
      const existing = await deps.store.getUpstreamTokens(pending.userId, upstream.name);
      const record: UpstreamTokenRecord = {
        userId: pending.userId,
        upstream: upstream.name,
        accessToken: deps.cipher.seal(tokens.access_token, upstreamTokenLabel(pending.userId, upstream.name, 'access')),
        refreshToken: tokens.refresh_token ? deps.cipher.seal(tokens.refresh_token, upstreamTokenLabel(pending.userId, upstream.name, 'refresh')) : null,
        tokenType: tokens.token_type,
        scopes: typeof tokens.scope === 'string' ? tokens.scope.split(' ').filter(Boolean) : upstream.scopes,
        expiresAt: typeof tokens.expires_in === 'number' ? now() + tokens.expires_in : null,
        status: 'connected',
        // A reconnect moves the version on, so callers holding the old token's version see it changed.
        version: (existing?.version ?? 0) + 1,
        issuer,
        ...(dpopKey ? { dpopKey: dpopKeys.seal(dpopKey as unknown as StoredDpopKey, pending.userId, upstream.name) } : {}),
        connectedAt: at,
        lastUsedAt: existing?.lastUsedAt ?? null,
        updatedAt: at,
      };
      await deps.store.saveUpstreamTokens(record);
      return { upstream: upstream.name, status: 'connected', scopes: record.scopes, expiresAt: record.expiresAt };
    },

    /**
     * Refreshes a user's upstream tokens (RFC 6749 §6) and stores the new ones sealed, with the
     * version moved on by one. Rotating refresh tokens are single use, so the raw response is stored
     * under `key` (the grant workflow and the version refreshed from) before anything else, and a
     * retried attempt continues from it instead of spending the old refresh token again.
     * An `invalid_grant` answer is permanent (`ApplicationFailure` of that type).
     */
    async refreshUpstreamToken(input: { userId: string; upstream: string; version: number; key: string }): Promise<UpstreamTokenMetadata> {
      const upstream = upstreamConfig(input.upstream);
      const access = upstreamTokenLabel(input.userId, upstream.name, 'access');
      const refresh = upstreamTokenLabel(input.userId, upstream.name, 'refresh');
      const current = await deps.store.getUpstreamTokens(input.userId, upstream.name);
      if (!current) throw ApplicationFailure.nonRetryable(`${input.userId} has no tokens at ${upstream.name}`, 'invalid_grant');
      // Someone else (a reconnect) already replaced the tokens this refresh was meant for.
      if (current.version !== input.version) return metadataOf(current);
      const earlier = await deps.store.getExchangeResult(input.key);
      let issuer = current.issuer;
      const tokens = await withUpstreamErrors(upstream.name, async () => {
        if (earlier) return JSON.parse(deps.cipher.open(earlier, input.key)) as oauth.TokenEndpointResponse;
        if (!current.refreshToken) throw ApplicationFailure.nonRetryable(`${upstream.name} gave no refresh token`, 'invalid_grant');
        const as = await authorizationServer(upstream, { fresh: true });
        assertBoundTo(as, current);
        issuer = as.issuer;
        const { client: oauthClient, auth } = await upstreamClient(upstream, as);
        const refreshToken = deps.cipher.open(current.refreshToken, refresh);
        // The new access token is bound to the grant's key as the old one was (RFC 9449 §5).
        const dpop = current.dpopKey ? await dpopKeys.open(current.dpopKey, input.userId, upstream.name) : undefined;
        const tokenEndpoint = as.token_endpoint ?? upstream.mcpUrl;
        const answer = await dpopKeys.tokenRequest(
          dpop,
          tokenEndpoint,
          (DPoP) =>
            oauth.refreshTokenGrantRequest(as, oauthClient, auth, refreshToken, {
              ...endpointOptions(as, tokenEndpoint),
              ...resourceParameter(resourceOf(upstream)),
              ...(DPoP ? { DPoP } : {}),
            }),
          (response) => oauth.processRefreshTokenResponse(as, oauthClient, response),
        );
        await deps.store.putExchangeResult(input.key, deps.cipher.seal(JSON.stringify(answer), input.key), new Date().toISOString());
        return answer;
      });
      const record: UpstreamTokenRecord = {
        ...current,
        accessToken: deps.cipher.seal(tokens.access_token, access),
        // Without a new refresh token in the answer the old one stays valid (RFC 6749 §6).
        refreshToken: tokens.refresh_token ? deps.cipher.seal(tokens.refresh_token, refresh) : current.refreshToken,
        tokenType: tokens.token_type,
        scopes: typeof tokens.scope === 'string' ? tokens.scope.split(' ').filter(Boolean) : current.scopes,
        expiresAt: typeof tokens.expires_in === 'number' ? now() + tokens.expires_in : null,
        status: 'connected',
        version: input.version + 1,
        ...(issuer ? { issuer } : {}),
        updatedAt: new Date().toISOString(),
      };
      // A server that stopped binding (a Bearer token for the proof) gets the token as Bearer from now on.
      if (!isDpopBound(tokens)) delete record.dpopKey;
      await deps.store.saveUpstreamTokens(record);
      return metadataOf(record);
    },

    /**
     * Revokes a user's tokens at the upstream (RFC 7009): the refresh token when there is one (which
     * ends the grant), else the access token. Returns false when the upstream has no revocation endpoint
     * or the user has no tokens.
     */
    async revokeUpstreamTokens(input: { userId: string; upstream: string }): Promise<{ revoked: boolean }> {
      const upstream = upstreamConfig(input.upstream);
      const current = await deps.store.getUpstreamTokens(input.userId, upstream.name);
      if (!current) return { revoked: false };
      return withUpstreamErrors(upstream.name, async () => {
        const as = await authorizationServer(upstream, { fresh: true });
        // A new authorization server never sees these tokens, not even to revoke them.
        if (!as.revocation_endpoint || (current.issuer !== undefined && current.issuer !== as.issuer)) return { revoked: false };
        const { client: oauthClient, auth } = await upstreamClient(upstream, as);
        const token = current.refreshToken
          ? deps.cipher.open(current.refreshToken, upstreamTokenLabel(input.userId, upstream.name, 'refresh'))
          : deps.cipher.open(current.accessToken, upstreamTokenLabel(input.userId, upstream.name, 'access'));
        const response = await oauth.revocationRequest(as, oauthClient, auth, token, {
          ...endpointOptions(as, as.revocation_endpoint),
          additionalParameters: { token_type_hint: current.refreshToken ? 'refresh_token' : 'access_token' },
        });
        await oauth.processRevocationResponse(response);
        return { revoked: true };
      });
    },
  };
}

/** A token record's metadata, as the grant workflow may see it. */
export interface UpstreamTokenMetadata {
  status: UpstreamTokenStatus;
  version: number;
  /** Epoch seconds, or null. */
  expiresAt: number | null;
  /** Whether a refresh token is stored, i.e. whether refreshing is possible at all. */
  refreshable: boolean;
}

function metadataOf(record: UpstreamTokenRecord): UpstreamTokenMetadata {
  return { status: record.status, version: record.version, expiresAt: record.expiresAt, refreshable: record.refreshToken !== null };
}

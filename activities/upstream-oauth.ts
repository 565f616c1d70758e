import { createHash, randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/activity';
import { activityLog } from './log.js';
import * as oauth from 'oauth4webapi';
import type { TokenCipher } from '../server/crypto/token-cipher.js';
import type { UpstreamConfig } from '../server/config.js';
import type { UpstreamAuthorizationStore, UpstreamTokenRecord, UpstreamTokenStatus, UpstreamTokenStore } from '../server/store/store.js';
import type { UpstreamOAuthConfig } from '../server/upstream-config.js';

/** What the upstream OAuth activities need. */
export interface UpstreamOAuthDeps {
  store: UpstreamAuthorizationStore & UpstreamTokenStore;
  cipher: TokenCipher;
  upstreams: UpstreamConfig[];
  /** The gateway's callback at every upstream: `<publicUrl>/oauth/upstream/callback`. */
  redirectUri: string;
  /** Test seams at the points where a crash matters most. */
  hooks?: { afterCodeExchange?(): Promise<void> | void };
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

function isLoopbackUrl(url: string): boolean {
  const { hostname } = new URL(url);
  return hostname === 'localhost' || hostname === '[::1]' || /^127\./.test(hostname);
}
const sha256 = (value: string) => createHash('sha256').update(value).digest('base64url');
const now = () => Math.floor(Date.now() / 1000);

function httpOptions(url: string) {
  // Plain http only for loopback upstreams (development and tests); everything else must be https.
  return isLoopbackUrl(url) ? { [oauth.allowInsecureRequests]: true, signal: AbortSignal.timeout(10_000) } : { signal: AbortSignal.timeout(10_000) };
}

/** An OAuth error from the upstream that retrying cannot fix. */
function permanent(error: unknown, upstream: string): ApplicationFailure {
  if (error instanceof oauth.ResponseBodyError) {
    return ApplicationFailure.nonRetryable(`${upstream} refused: ${error.error}${error.error_description ? ` (${error.error_description})` : ''}`, error.error);
  }
  if (error instanceof oauth.AuthorizationResponseError) {
    return ApplicationFailure.nonRetryable(`${upstream} refused: ${error.error}`, error.error);
  }
  if (error instanceof oauth.OperationProcessingError) {
    return ApplicationFailure.nonRetryable(`${upstream} answered something the gateway cannot accept: ${error.message}`, 'invalid_response');
  }
  return ApplicationFailure.nonRetryable(`${upstream}: ${(error as Error).message}`, 'server_error');
}

/** True for failures worth retrying: the network, timeouts, 5xx. */
function transient(error: unknown): boolean {
  if (error instanceof oauth.ResponseBodyError) return error.status >= 500;
  if (error instanceof oauth.OperationProcessingError || error instanceof oauth.AuthorizationResponseError) return false;
  return true;
}

/** Upstream OAuth: discovery (RFC 9728, RFC 8414, OIDC), registration (RFC 7591), code and refresh grants. */
export function createUpstreamOAuth(deps: UpstreamOAuthDeps) {
  const servers = new Map<string, Promise<oauth.AuthorizationServer>>();

  function upstreamConfig(name: string): UpstreamConfig & { auth: UpstreamOAuthConfig } {
    const upstream = deps.upstreams.find((candidate) => candidate.name === name);
    if (!upstream) throw ApplicationFailure.nonRetryable(`no upstream named ${name}`, 'invalid_request');
    if (upstream.auth === 'none') throw ApplicationFailure.nonRetryable(`${name} needs no authorization`, 'invalid_request');
    return upstream as UpstreamConfig & { auth: UpstreamOAuthConfig };
  }

  async function discover(issuer: string): Promise<oauth.AuthorizationServer> {
    const url = new URL(issuer);
    for (const algorithm of ['oauth2', 'oidc'] as const) {
      try {
        const response = await oauth.discoveryRequest(url, { algorithm, ...httpOptions(issuer) });
        return await oauth.processDiscoveryResponse(url, response);
      } catch (error) {
        if (algorithm === 'oidc') throw error;
      }
    }
    throw new Error('unreachable');
  }

  /** The upstream's authorization server metadata, found once per process. */
  async function authorizationServer(upstream: UpstreamConfig & { auth: UpstreamOAuthConfig }): Promise<oauth.AuthorizationServer> {
    let server = servers.get(upstream.name);
    if (!server) {
      server = (async () => {
        const { auth } = upstream;
        if (auth.endpoints) {
          return {
            issuer: new URL(auth.endpoints.authorization).origin,
            authorization_endpoint: auth.endpoints.authorization,
            token_endpoint: auth.endpoints.token,
            ...(auth.endpoints.revocation ? { revocation_endpoint: auth.endpoints.revocation } : {}),
            code_challenge_methods_supported: ['S256'],
          };
        }
        let issuer = auth.issuer;
        if (!issuer) {
          const resource = new URL(upstream.mcpUrl);
          const response = await oauth.resourceDiscoveryRequest(resource, httpOptions(upstream.mcpUrl));
          const metadata = await oauth.processResourceDiscoveryResponse(resource, response);
          issuer = metadata.authorization_servers?.[0];
          if (!issuer) throw ApplicationFailure.nonRetryable(`${upstream.name} names no authorization server`, 'invalid_response');
        }
        return discover(issuer);
      })();
      servers.set(upstream.name, server);
      server.catch(() => servers.delete(upstream.name));
    }
    return server;
  }

  /** The gateway's client at the upstream: from config, or registered there once and stored. */
  async function client(upstream: UpstreamConfig & { auth: UpstreamOAuthConfig }, as: oauth.AuthorizationServer) {
    const configured = upstream.auth.client;
    if (configured.kind === 'static') {
      const auth =
        configured.authMethod === 'none' || !configured.clientSecret
          ? oauth.None()
          : configured.authMethod === 'client_secret_post'
            ? oauth.ClientSecretPost(configured.clientSecret)
            : oauth.ClientSecretBasic(configured.clientSecret);
      return { client: { client_id: configured.clientId } as oauth.Client, auth };
    }
    if (configured.kind === 'metadata-document') {
      if (as.client_id_metadata_document_supported !== true) {
        throw ApplicationFailure.nonRetryable(`${upstream.name} does not accept client ID metadata documents; configure a client id or dynamic registration`, 'invalid_client');
      }
      return { client: { client_id: new URL('/oauth/client-metadata.json', deps.redirectUri).href } as oauth.Client, auth: oauth.None() };
    }
    const stored = await deps.store.getUpstreamClient(upstream.name);
    if (stored && stored.issuer === as.issuer) {
      const secret = stored.clientSecret ? deps.cipher.open(stored.clientSecret, `upstream_clients:${upstream.name}`) : undefined;
      return { client: { client_id: stored.clientId } as oauth.Client, auth: secret ? oauth.ClientSecretBasic(secret) : oauth.None() };
    }
    if (!as.registration_endpoint) {
      throw ApplicationFailure.nonRetryable(`${upstream.name} offers no dynamic registration; configure a client id`, 'invalid_client');
    }
    const response = await oauth.dynamicClientRegistrationRequest(
      as,
      {
        client_name: 'Consent Gateway',
        redirect_uris: [deps.redirectUri],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      },
      httpOptions(as.registration_endpoint),
    );
    const registered = await oauth.processDynamicClientRegistrationResponse(response);
    const secret = typeof registered.client_secret === 'string' ? registered.client_secret : undefined;
    const { client_secret: _secret, registration_access_token: _token, ...metadata } = registered as Record<string, unknown>;
    await deps.store.saveUpstreamClient({
      upstream: upstream.name,
      issuer: as.issuer,
      clientId: registered.client_id,
      clientSecret: secret ? deps.cipher.seal(secret, `upstream_clients:${upstream.name}`) : null,
      metadata,
      registeredAt: new Date().toISOString(),
    });
    activityLog().info('registered at upstream', { upstream: upstream.name, issuer: as.issuer });
    return { client: { client_id: registered.client_id } as oauth.Client, auth: secret ? oauth.ClientSecretBasic(secret) : oauth.None() };
  }

  return {
    /**
     * Creates a single-use authorization at the upstream (PKCE S256, fresh `state`, `resource`) and
     * stores the authorization URL sealed; returns only a reference, so no state or verifier reaches
     * workflow history.
     */
    async prepareUpstreamAuthorization(input: { flowId: string; upstream: string; userId: string }): Promise<{ authorizationRef: string }> {
      const upstream = upstreamConfig(input.upstream);
      try {
        const as = await authorizationServer(upstream);
        const { client: oauthClient } = await client(upstream, as);
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
        if (upstream.scopes.length > 0) url.searchParams.set('scope', upstream.scopes.join(' '));
        if (upstream.auth.resource) url.searchParams.set('resource', upstream.mcpUrl);
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
        });
        const authorizationRef = `authorize:${randomUUID()}`;
        await deps.store.putExchangeResult(authorizationRef, deps.cipher.seal(url.href, authorizationRef), new Date().toISOString());
        return { authorizationRef };
      } catch (error) {
        if (error instanceof ApplicationFailure) throw error;
        if (transient(error)) throw error;
        throw permanent(error, upstream.name);
      }
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
      let tokens: oauth.TokenEndpointResponse;
      const earlier = await deps.store.getExchangeResult(key);
      try {
        if (earlier) {
          tokens = JSON.parse(deps.cipher.open(earlier, key)) as oauth.TokenEndpointResponse;
        } else {
          const as = await authorizationServer(upstream);
          const { client: oauthClient, auth } = await client(upstream, as);
          const callback = new URLSearchParams(deps.cipher.open(pending.callback, `upstream_authorizations:${input.stateHash}:callback`));
          // The state was checked by the callback route (by its hash); iss (RFC 9207) is checked here.
          const parameters = oauth.validateAuthResponse(as, oauthClient, callback, oauth.skipStateCheck);
          const verifier = deps.cipher.open(pending.codeVerifier, `upstream_authorizations:${input.stateHash}`);
          const response = await oauth.authorizationCodeGrantRequest(as, oauthClient, auth, parameters, pending.redirectUri, verifier, {
            ...httpOptions(as.token_endpoint ?? upstream.mcpUrl),
            ...(upstream.auth.resource ? { additionalParameters: { resource: upstream.mcpUrl } } : {}),
          });
          tokens = await oauth.processAuthorizationCodeResponse(as, oauthClient, response);
          await deps.store.putExchangeResult(key, deps.cipher.seal(JSON.stringify(tokens), key), new Date().toISOString());
          await deps.hooks?.afterCodeExchange?.();
        }
      } catch (error) {
        if (error instanceof ApplicationFailure) throw error;
        if (transient(error)) throw error;
        throw permanent(error, upstream.name);
      }
      const at = new Date().toISOString();
      const existing = await deps.store.getUpstreamTokens(pending.userId, upstream.name);
      const record: UpstreamTokenRecord = {
        userId: pending.userId,
        upstream: upstream.name,
        accessToken: deps.cipher.seal(tokens.access_token, `upstream_tokens:${pending.userId}:${upstream.name}:access`),
        refreshToken: tokens.refresh_token ? deps.cipher.seal(tokens.refresh_token, `upstream_tokens:${pending.userId}:${upstream.name}:refresh`) : null,
        tokenType: tokens.token_type,
        scopes: typeof tokens.scope === 'string' ? tokens.scope.split(' ').filter(Boolean) : upstream.scopes,
        expiresAt: typeof tokens.expires_in === 'number' ? now() + tokens.expires_in : null,
        status: 'connected',
        // A reconnect moves the version on, so callers holding the old token's version see it changed.
        version: (existing?.version ?? 0) + 1,
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
      const access = `upstream_tokens:${input.userId}:${upstream.name}:access`;
      const refresh = `upstream_tokens:${input.userId}:${upstream.name}:refresh`;
      const current = await deps.store.getUpstreamTokens(input.userId, upstream.name);
      if (!current) throw ApplicationFailure.nonRetryable(`${input.userId} has no tokens at ${upstream.name}`, 'invalid_grant');
      // Someone else (a reconnect) already replaced the tokens this refresh was meant for.
      if (current.version !== input.version) return metadataOf(current);
      let tokens: oauth.TokenEndpointResponse;
      const earlier = await deps.store.getExchangeResult(input.key);
      try {
        if (earlier) {
          tokens = JSON.parse(deps.cipher.open(earlier, input.key)) as oauth.TokenEndpointResponse;
        } else {
          if (!current.refreshToken) throw ApplicationFailure.nonRetryable(`${upstream.name} gave no refresh token`, 'invalid_grant');
          const as = await authorizationServer(upstream);
          const { client: oauthClient, auth } = await client(upstream, as);
          const response = await oauth.refreshTokenGrantRequest(as, oauthClient, auth, deps.cipher.open(current.refreshToken, refresh), {
            ...httpOptions(as.token_endpoint ?? upstream.mcpUrl),
            ...(upstream.auth.resource ? { additionalParameters: { resource: upstream.mcpUrl } } : {}),
          });
          tokens = await oauth.processRefreshTokenResponse(as, oauthClient, response);
          await deps.store.putExchangeResult(input.key, deps.cipher.seal(JSON.stringify(tokens), input.key), new Date().toISOString());
        }
      } catch (error) {
        if (error instanceof ApplicationFailure) throw error;
        if (transient(error)) throw error;
        throw permanent(error, upstream.name);
      }
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
        updatedAt: new Date().toISOString(),
      };
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
      try {
        const as = await authorizationServer(upstream);
        if (!as.revocation_endpoint) return { revoked: false };
        const { client: oauthClient, auth } = await client(upstream, as);
        const token = current.refreshToken
          ? deps.cipher.open(current.refreshToken, `upstream_tokens:${input.userId}:${upstream.name}:refresh`)
          : deps.cipher.open(current.accessToken, `upstream_tokens:${input.userId}:${upstream.name}:access`);
        const response = await oauth.revocationRequest(as, oauthClient, auth, token, {
          ...httpOptions(as.revocation_endpoint),
          additionalParameters: { token_type_hint: current.refreshToken ? 'refresh_token' : 'access_token' },
        });
        await oauth.processRevocationResponse(response);
        return { revoked: true };
      } catch (error) {
        if (error instanceof ApplicationFailure) throw error;
        if (transient(error)) throw error;
        throw permanent(error, upstream.name);
      }
    },

    /** Deletes a user's tokens for an upstream from the store. */
    async deleteUpstreamTokens(input: { userId: string; upstream: string }): Promise<{ deleted: boolean }> {
      return { deleted: await deps.store.deleteUpstreamTokens(input.userId, input.upstream) };
    },

    /** Records where a user stands with an upstream (`needs_reconnect`, ...) in the read model. */
    async setUpstreamTokenStatus(input: { userId: string; upstream: string; status: UpstreamTokenStatus }): Promise<void> {
      await deps.store.setUpstreamTokenStatus(input.userId, input.upstream, input.status, new Date().toISOString());
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

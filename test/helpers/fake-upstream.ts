import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import Router from '@koa/router';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { decodeJwt } from 'jose';
import Koa, { type Context, type Next } from 'koa';
import * as z from 'zod';

import { identityGrants, verifyDpopProof, type IdentityGrantCounters, type TrustedIdp } from './identity-grants.js';

/** The two upstream shapes the gateway must handle. */
export const FAKE_UPSTREAM_PRESETS = ['github', 'notion'] as const;

/**
 * `github`: a static confidential client, no dynamic registration, no refresh token, long-lived
 * access tokens. `notion`: dynamic client registration (RFC 7591), short-lived access tokens,
 * rotating refresh tokens, protected resource metadata (RFC 9728).
 */
export type FakeUpstreamPreset = (typeof FAKE_UPSTREAM_PRESETS)[number];

/** Options of {@link startFakeUpstream}; every field but `preset` has a preset default. */
export interface FakeUpstreamOptions {
  preset: FakeUpstreamPreset;
  /** Static client id (`github` only); generated when omitted. */
  clientId?: string;
  /** Static client secret (`github` only); generated when omitted. */
  clientSecret?: string;
  /**
   * Redirect URIs of the static client (`github` only). The client is a native one, so the port of
   * a loopback redirect URI is not compared (RFC 8252 §7.3, as GitHub does for loopback URIs).
   * Default: `/oauth/upstream/callback` on `127.0.0.1` and on `localhost`.
   */
  redirectUris?: string[];
  /** How the static client authenticates at the token endpoint. Default `client_secret_post`. */
  tokenEndpointAuthMethod?: 'client_secret_post' | 'client_secret_basic';
  /** Scopes the server knows. Default `repo read:user` (github), `mcp:tools` (notion). */
  scopes?: string[];
  /** Access token lifetime. Default 8 h (github), 60 s (notion). */
  accessTokenTtlSeconds?: number;
  /** Refresh token lifetime (`notion` only). Default 14 days. */
  refreshTokenTtlSeconds?: number;
  /**
   * Finish every interaction at once, without a page, as this user (a `login_hint` on the
   * authorization request wins). Lets a plain HTTP client run the whole code flow.
   */
  autoLogin?: string;
  /** Serve RFC 9728 metadata and name it in the 401 challenge. Default: on for notion only. */
  protectedResourceMetadata?: boolean;
  /**
   * Accept client ID metadata documents (https `client_id` URLs), fetched with this function instead
   * of the network, so a test can serve a document for a made-up https host.
   */
  clientMetadataDocuments?: { fetch(url: string, init: RequestInit): Promise<Response> };
  /**
   * Misbehave on purpose: rewrite the authorization server metadata (RFC 8414 and OpenID
   * discovery documents) before it is served, e.g. to name another issuer or drop a capability.
   */
  rewriteMetadata?(metadata: Record<string, unknown>): Record<string, unknown>;
  /**
   * Misbehave on purpose: rewrite the parameters of every authorization response (the redirect to
   * the client with `code` or `error`, RFC 6749 §4.1.2), e.g. to drop or change `iss` (RFC 9207).
   */
  rewriteAuthorizationResponse?(parameters: URLSearchParams): void;
  /**
   * Scopes a tool needs beyond the token's (by tool name): a call without them is refused with 403
   * `insufficient_scope` naming them (RFC 6750 §3.1, MCP step-up). Each must be in `scopes`.
   */
  toolScopes?: Record<string, string[]>;
  /**
   * Trust this IdP directly (`github` only, for its static client): the token endpoint also takes
   * RFC 8693 token exchanges of the IdP's ID tokens and RFC 7523 JWT bearer grants of its ID-JAGs
   * (see `identity-grants.ts`). Default: neither grant.
   */
  trustedIdp?: TrustedIdp;
  /**
   * With `trustedIdp`: take its grants only with a DPoP proof (RFC 9449) and bind the tokens to the
   * proof's key; the MCP endpoint takes a bound token only as `Authorization: DPoP` with a proof of
   * that key for the request. Default off.
   */
  requireDpop?: boolean;
  /**
   * Require DPoP nonces (RFC 9449 §8, §9): the token endpoint answers `use_dpop_nonce` to a proof
   * without its current nonce, and the MCP endpoint answers 401 `DPoP error="use_dpop_nonce"` with
   * a `DPoP-Nonce` header to a bound token's proof without its own. Default off. (The authorization
   * server advertises DPoP and binds the tokens of any grant sent with a proof either way.)
   */
  dpopNonce?: boolean;
  /** Advertise DPoP and bind the tokens of grants sent with a proof (oidc-provider's DPoP). Default on. */
  dpop?: boolean;
}

/** Live counters of a fake upstream; see {@link FakeUpstream.counters}. */
export interface FakeUpstreamCounters extends IdentityGrantCounters {
  /** Successful `authorization_code` grants at the token endpoint. */
  codeExchanges: number;
  /** Successful `refresh_token` grants at the token endpoint. */
  refreshGrants: number;
  /** Token endpoint requests answered with an error, any grant type. */
  failedTokenRequests: number;
  /** Successful RFC 7591 registrations. */
  registrations: number;
  /** Requests answered 200 by the RFC 7009 revocation endpoint. */
  revocations: number;
  /** Every HTTP request to the MCP endpoint, authorized or not. */
  mcpRequests: number;
  /** MCP endpoint requests refused with 401 for the token they presented. */
  rejectedMcpRequests: number;
  /** MCP endpoint requests without a token, answered 401 with the challenge (an MCP client's discovery starts so). */
  unauthenticatedMcpRequests: number;
  /** Of those, the POSTs (messages); a client's GET stream may be refused as well. */
  rejectedMcpPosts: number;
  /** Tool calls refused with 403 `insufficient_scope` (see `toolScopes`). */
  insufficientScopeRefusals: number;
  /** Successful `authorization_code` grants sent with a DPoP proof (the tokens are bound to its key). */
  dpopCodeExchanges: number;
  /** Successful `refresh_token` grants sent with a DPoP proof. */
  dpopRefreshGrants: number;
  /** Token requests answered 400 `use_dpop_nonce` (see `dpopNonce`). */
  tokenNonceChallenges: number;
  /** MCP requests answered 401 `use_dpop_nonce` (see `dpopNonce`). */
  resourceNonceChallenges: number;
}

/** One tool call that reached the MCP server, with the account its access token belongs to. */
export interface FakeUpstreamToolCall {
  accountId: string;
  tool: string;
}

/** A running fake upstream: an OAuth authorization server in front of an MCP server. */
export interface FakeUpstream {
  readonly preset: FakeUpstreamPreset;
  /** Issuer identifier, the exact origin clients must use (RFC 8414 §2). */
  readonly issuer: string;
  /** The MCP endpoint, also the only resource indicator tokens are issued for (RFC 8707). */
  readonly mcpUrl: string;
  readonly authorizationEndpoint: string;
  readonly tokenEndpoint: string;
  /** RFC 7591 registration endpoint (`notion` only). */
  readonly registrationEndpoint: string | undefined;
  /** RFC 7009 revocation endpoint. */
  readonly revocationEndpoint: string;
  /** Path-inserted RFC 9728 metadata URL, when protected resource metadata is served. */
  readonly resourceMetadataUrl: string | undefined;
  /** Static client (`github` only). */
  readonly clientId: string | undefined;
  readonly clientSecret: string | undefined;
  readonly scopes: readonly string[];
  /** Counters, updated live. */
  readonly counters: Readonly<FakeUpstreamCounters>;
  /** Tool calls the MCP server served, in order. */
  readonly toolCalls: readonly FakeUpstreamToolCall[];
  /** Zero every counter and forget the tool calls. */
  resetCounters(): void;
  /** Change (or turn off with `undefined`) the user that interactions finish as automatically. */
  setAutoLogin(login: string | undefined): void;
  /** Access tokens issued from now on live this many seconds. */
  setAccessTokenTtl(seconds: number): void;
  /**
   * Hold every request to the token endpoint (any grant) until `release()`: `arrived` resolves
   * once the first one is there. Requests held so far, and those arriving later, then go on.
   */
  holdTokenRequests(): { arrived: Promise<void>; release(): void };
  /** Give the MCP endpoint a new DPoP nonce (`dpopNonce`): proofs with the old one are challenged again. */
  rotateResourceNonce(): void;
  /**
   * Move the MCP server to another authorization server (MCP 2026-07-28, SEP-2352): its protected
   * resource metadata names `issuer` from now on, and every token this server's own authorization
   * server issued is refused with 401.
   */
  migrateTo(issuer: string): void;
  /**
   * Follow an authorization request (RFC 6749 §4.1.1) through this server without a browser,
   * keeping its cookies, and return the URL it finally redirects to (the client's redirect URI
   * with `code` or `error`). Submits the interaction form as `login` when no `autoLogin` is set.
   */
  completeAuthorization(authorizationUrl: string | URL, options?: { login?: string }): Promise<URL>;
  /**
   * Revoke every grant the user gave (with its access, refresh tokens and codes), as a user
   * removing the app at the upstream would. Returns how many grants were revoked. Not counted in
   * `counters.revocations`, which counts RFC 7009 requests only.
   */
  revokeAllTokensFor(accountId: string): Promise<number>;
  /** Stop both servers and drop every open connection. */
  close(): Promise<void>;
}

interface PresetDefaults {
  scopes: string[];
  accessTokenTtlSeconds: number;
  issuesRefreshTokens: boolean;
  dynamicRegistration: boolean;
  protectedResourceMetadata: boolean;
}

const PRESETS: Record<FakeUpstreamPreset, PresetDefaults> = {
  github: {
    scopes: ['repo', 'read:user'],
    accessTokenTtlSeconds: 8 * 60 * 60,
    issuesRefreshTokens: false,
    dynamicRegistration: false,
    protectedResourceMetadata: false,
  },
  notion: {
    scopes: ['mcp:tools'],
    accessTokenTtlSeconds: 60,
    issuesRefreshTokens: true,
    dynamicRegistration: true,
    protectedResourceMetadata: true,
  },
};

const DEFAULT_REFRESH_TOKEN_TTL_SECONDS = 14 * 24 * 60 * 60;
const AUTHORIZATION_CODE_TTL_SECONDS = 60;
const INTERACTION_TTL_SECONDS = 10 * 60;
const MAX_FORM_BYTES = 16 * 1024;
const MAX_MCP_BODY_BYTES = 1024 * 1024;
const MAX_AUTHORIZATION_HOPS = 10;
const PRM_PATH = '/.well-known/oauth-protected-resource';
const ROUTES = {
  authorization: '/authorize',
  token: '/token',
  registration: '/register',
  revocation: '/revoke',
} as const;
const MCP_PATH = '/mcp';

/**
 * Start a fake upstream on two free loopback ports: an OAuth 2.1 authorization server
 * (`oidc-provider`: RFC 8414 and OpenID discovery, PKCE S256 required, RFC 8707 audience-bound
 * opaque tokens, RFC 7009 revocation, RFC 7591 registration for `notion`) and an MCP server
 * (Streamable HTTP) that accepts only access tokens that server issued for its URL (RFC 6750).
 */
export async function startFakeUpstream(options: FakeUpstreamOptions): Promise<FakeUpstream> {
  const settings = resolveSettings(options);
  const staticClient = options.preset === 'github' ? resolveStaticClient(options) : undefined;
  // The issuer and the audience must be known before the provider is built, so bind first.
  const asServer = await listenOnLoopback();
  const mcpServer = await listenOnLoopback();
  try {
    return await serveUpstream(settings, staticClient, options.autoLogin, asServer, mcpServer);
  } catch (error) {
    await Promise.all([closeServer(asServer), closeServer(mcpServer)]);
    throw error;
  }
}

function resolveSettings(options: FakeUpstreamOptions): UpstreamSettings {
  const preset = PRESETS[options.preset];
  return {
    preset: options.preset,
    scopes: options.scopes ?? preset.scopes,
    accessTokenTtlSeconds: options.accessTokenTtlSeconds ?? preset.accessTokenTtlSeconds,
    refreshTokenTtlSeconds: options.refreshTokenTtlSeconds ?? DEFAULT_REFRESH_TOKEN_TTL_SECONDS,
    issuesRefreshTokens: preset.issuesRefreshTokens,
    dynamicRegistration: preset.dynamicRegistration,
    protectedResourceMetadata: options.protectedResourceMetadata ?? preset.protectedResourceMetadata,
    metadataFetch: options.clientMetadataDocuments?.fetch,
    rewriteMetadata: options.rewriteMetadata,
    rewriteAuthorizationResponse: options.rewriteAuthorizationResponse,
    toolScopes: options.toolScopes ?? {},
    trustedIdp: options.trustedIdp,
    requireDpop: options.requireDpop ?? false,
    dpopNonce: options.dpopNonce ?? false,
    dpop: options.dpop ?? true,
  };
}

function resolveStaticClient(options: FakeUpstreamOptions): StaticClient {
  return {
    clientId: options.clientId ?? `fake-github-${randomUUID()}`,
    clientSecret: options.clientSecret ?? randomBytes(24).toString('base64url'),
    redirectUris: options.redirectUris ?? [
      'http://127.0.0.1/oauth/upstream/callback',
      'http://localhost/oauth/upstream/callback',
    ],
    tokenEndpointAuthMethod: options.tokenEndpointAuthMethod ?? 'client_secret_post',
  };
}

async function serveUpstream(
  settings: UpstreamSettings,
  staticClient: StaticClient | undefined,
  autoLogin: string | undefined,
  asServer: Server,
  mcpServer: Server,
): Promise<FakeUpstream> {
  const issuer = originOf(asServer);
  const mcpUrl = `${originOf(mcpServer)}${MCP_PATH}`;
  const resourceMetadataUrl = settings.protectedResourceMetadata
    ? `${originOf(mcpServer)}${PRM_PATH}${MCP_PATH}`
    : undefined;
  const state: UpstreamState = { counters: zeroCounters(), toolCalls: [], autoLogin, authorizationServer: issuer, resourceNonce: randomBytes(16).toString('base64url') };
  const store = new ModelStore();
  const { default: Provider, errors } = await loadOidcProvider();
  const provider = new Provider(
    issuer,
    providerConfiguration({
      settings,
      issuer,
      mcpUrl,
      staticClient,
      store,
      InvalidTarget: errors.InvalidTarget,
    }),
  );
  provider.use(countEndpointOutcomes(state.counters));
  const serveAuthorizationServer = authorizationServerApp(provider, mcpUrl, state).callback();
  const identityGrant = settings.trustedIdp && staticClient
    ? identityGrants(settings.trustedIdp, {
        issuer,
        mcpUrl,
        scopes: settings.scopes,
        client: staticClient,
        counters: state.counters,
        requireDpop: settings.requireDpop,
        issueAccessToken: (accountId, scope, jkt) => issueAccessToken(provider, staticClient.clientId, accountId, scope, jkt, mcpUrl, settings.accessTokenTtlSeconds),
      })
    : undefined;
  asServer.on('request', async (req: IncomingMessage, res: ServerResponse) => {
    const hold = state.tokenHold;
    if (hold && req.method === 'POST' && new URL(req.url ?? '/', issuer).pathname === ROUTES.token) {
      hold.arrive();
      await hold.released;
    }
    misbehave(req, res, issuer, settings);
    if (identityGrant && (await identityGrant(req, res))) return;
    return serveAuthorizationServer(req, res);
  });
  mcpServer.on(
    'request',
    mcpRequestHandler({ provider, settings, mcpUrl, resourceMetadataUrl, issuer, state }),
  );

  return {
    preset: settings.preset,
    issuer,
    mcpUrl,
    authorizationEndpoint: `${issuer}${ROUTES.authorization}`,
    tokenEndpoint: `${issuer}${ROUTES.token}`,
    registrationEndpoint: settings.dynamicRegistration ? `${issuer}${ROUTES.registration}` : undefined,
    revocationEndpoint: `${issuer}${ROUTES.revocation}`,
    resourceMetadataUrl,
    clientId: staticClient?.clientId,
    clientSecret: staticClient?.clientSecret,
    scopes: settings.scopes,
    counters: state.counters,
    toolCalls: state.toolCalls,
    resetCounters() {
      Object.assign(state.counters, zeroCounters());
      state.toolCalls.length = 0;
    },
    rotateResourceNonce() {
      state.resourceNonce = randomBytes(16).toString('base64url');
    },
    setAutoLogin(login) {
      state.autoLogin = login;
    },
    setAccessTokenTtl(seconds) {
      settings.accessTokenTtlSeconds = seconds;
    },
    holdTokenRequests() {
      let arrive!: () => void;
      let release!: () => void;
      const arrived = new Promise<void>((resolve) => (arrive = resolve));
      const released = new Promise<void>((resolve) => (release = resolve));
      state.tokenHold = { arrive, released };
      return {
        arrived,
        release() {
          state.tokenHold = undefined;
          release();
        },
      };
    },
    migrateTo(newIssuer) {
      state.authorizationServer = newIssuer;
    },
    completeAuthorization(authorizationUrl, completion) {
      return followAuthorization(new URL(authorizationUrl), issuer, completion?.login);
    },
    async revokeAllTokensFor(accountId) {
      const grantIds = store.idsWhere('Grant', (payload) => payload.accountId === accountId);
      await Promise.all(grantIds.map((grantId) => revokeGrant(provider, grantId)));
      return grantIds.length;
    },
    async close() {
      await Promise.all([closeServer(asServer), closeServer(mcpServer)]);
    },
  };
}

// oidc-provider ships no type declarations: the part of its API used here is typed below.

interface OidcProviderModule {
  default: new (issuer: string, configuration: Record<string, unknown>) => OidcProvider;
  errors: { InvalidTarget: new (description?: string) => Error };
}

interface OidcProvider {
  callback(): (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  use(middleware: (ctx: ProviderContext, next: Next) => Promise<void>): unknown;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>;
  interactionFinished(
    req: IncomingMessage,
    res: ServerResponse,
    result: InteractionResult,
    options: { mergeWithLastSubmission: boolean },
  ): Promise<void>;
  readonly Grant: GrantModel;
  readonly AccessToken: TokenModel<AccessToken> & (new (init: Record<string, unknown>) => { save(): Promise<string> });
  readonly Client: { find(id: string): Promise<unknown> };
  readonly RefreshToken: TokenModel<unknown>;
  readonly AuthorizationCode: TokenModel<unknown>;
}

type ProviderContext = Context & {
  oidc?: { route?: string; params?: Readonly<Record<string, unknown>> };
};

interface InteractionDetails {
  uid: string;
  params: Readonly<Record<string, unknown>>;
}

type InteractionResult =
  | { login: { accountId: string }; consent: { grantId: string } }
  | { error: string; error_description: string };

interface GrantModel {
  new (init: { accountId: string; clientId: string }): Grant;
  find(id: string): Promise<Grant | undefined>;
}

interface Grant {
  addOIDCScope(scope: string): void;
  addResourceScope(resource: string, scope: string): void;
  save(): Promise<string>;
  destroy(): Promise<void>;
}

interface TokenModel<T> {
  find(value: string): Promise<T | undefined>;
  revokeByGrantId(grantId: string): Promise<void>;
}

interface AccessToken {
  readonly accountId: string;
  readonly clientId: string;
  readonly aud?: string | string[];
  readonly scope?: string;
  readonly exp: number;
  readonly isExpired: boolean;
  /** The thumbprint of the DPoP key the token is bound to. */
  readonly jkt?: string;
}

interface ProviderClient {
  grantTypeAllowed(grantType: string): boolean;
}

interface UpstreamSettings {
  preset: FakeUpstreamPreset;
  scopes: string[];
  accessTokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  issuesRefreshTokens: boolean;
  dynamicRegistration: boolean;
  protectedResourceMetadata: boolean;
  metadataFetch: ((url: string, init: RequestInit) => Promise<Response>) | undefined;
  rewriteMetadata: FakeUpstreamOptions['rewriteMetadata'];
  rewriteAuthorizationResponse: FakeUpstreamOptions['rewriteAuthorizationResponse'];
  toolScopes: Record<string, string[]>;
  trustedIdp: TrustedIdp | undefined;
  requireDpop: boolean;
  dpopNonce: boolean;
  dpop: boolean;
}

const METADATA_PATHS = new Set(['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration']);

// Rewrites what the provider writes to `res` (a redirect's Location, a metadata body) as the
// settings ask, so the gateway meets an authorization server that misbehaves in one named way.
function misbehave(req: IncomingMessage, res: ServerResponse, issuer: string, settings: UpstreamSettings): void {
  const { rewriteMetadata, rewriteAuthorizationResponse } = settings;
  if (rewriteAuthorizationResponse) {
    const setHeader = res.setHeader.bind(res);
    res.setHeader = (name: string, value: number | string | readonly string[]) => {
      if (name.toLowerCase() === 'location' && typeof value === 'string') {
        const target = new URL(value, issuer);
        if (target.origin !== issuer && (target.searchParams.has('code') || target.searchParams.has('error'))) {
          rewriteAuthorizationResponse(target.searchParams);
          return setHeader(name, target.href);
        }
      }
      return setHeader(name, value);
    };
  }
  if (rewriteMetadata && req.method === 'GET' && METADATA_PATHS.has(new URL(req.url ?? '/', issuer).pathname)) {
    const end = res.end.bind(res) as (chunk?: unknown, ...rest: unknown[]) => ServerResponse;
    res.end = ((chunk?: unknown, ...rest: unknown[]) => {
      if (res.statusCode !== 200 || (typeof chunk !== 'string' && !Buffer.isBuffer(chunk))) return end(chunk, ...rest);
      const body = JSON.stringify(rewriteMetadata(JSON.parse(String(chunk)) as Record<string, unknown>));
      if (!res.headersSent) res.setHeader('Content-Length', Buffer.byteLength(body));
      return end(body, ...rest);
    }) as typeof res.end;
  }
}

interface StaticClient {
  clientId: string;
  clientSecret: string;
  redirectUris: string[];
  tokenEndpointAuthMethod: string;
}

interface UpstreamState {
  counters: FakeUpstreamCounters;
  toolCalls: FakeUpstreamToolCall[];
  autoLogin: string | undefined;
  /** The authorization server the resource metadata names; this server's own unless migrated. */
  authorizationServer: string;
  /** The nonce the MCP endpoint asks DPoP proofs to carry (`dpopNonce`). */
  resourceNonce: string;
  /** While set, token endpoint requests report themselves and wait for `released`. */
  tokenHold?: { arrive(): void; released: Promise<void> };
}

const OIDC_PROVIDER_MODULE: string = 'oidc-provider';

async function loadOidcProvider(): Promise<OidcProviderModule> {
  return (await import(OIDC_PROVIDER_MODULE)) as OidcProviderModule;
}

interface ProviderSetup {
  settings: UpstreamSettings;
  issuer: string;
  mcpUrl: string;
  staticClient: StaticClient | undefined;
  store: ModelStore;
  InvalidTarget: OidcProviderModule['errors']['InvalidTarget'];
}

function providerConfiguration({
  settings,
  issuer,
  mcpUrl,
  staticClient,
  store,
  InvalidTarget,
}: ProviderSetup): Record<string, unknown> {
  const scope = settings.scopes.join(' ');
  // Cookies ignore ports: servers on one loopback host would overwrite each other's cookies.
  const cookiePrefix = `fake_${settings.preset}_${new URL(issuer).port}`;
  // A grant outliving its refresh token keeps the refresh grant from failing for the wrong reason.
  const grantTtlSeconds = settings.refreshTokenTtlSeconds + 24 * 60 * 60;
  return {
    clients: staticClient
      ? [
          {
            client_id: staticClient.clientId,
            client_secret: staticClient.clientSecret,
            redirect_uris: staticClient.redirectUris,
            application_type: 'native',
            grant_types: ['authorization_code'],
            response_types: ['code'],
            token_endpoint_auth_method: staticClient.tokenEndpointAuthMethod,
          },
        ]
      : [],
    clientDefaults: {
      grant_types: settings.issuesRefreshTokens
        ? ['authorization_code', 'refresh_token']
        : ['authorization_code'],
      response_types: ['code'],
      id_token_signed_response_alg: 'ES256',
      token_endpoint_auth_method: 'client_secret_basic',
    },
    routes: ROUTES,
    ...(settings.metadataFetch ? { fetch: settings.metadataFetch } : {}),
    adapter: (model: string) => new ModelStoreAdapter(model, store),
    jwks: { keys: [signingKey()] },
    cookies: {
      keys: [randomBytes(32).toString('base64url')],
      names: {
        session: `${cookiePrefix}_session`,
        interaction: `${cookiePrefix}_interaction`,
        resume: `${cookiePrefix}_interaction_resume`,
      },
    },
    scopes: settings.scopes,
    responseTypes: ['code'],
    pkce: { required: () => true },
    findAccount: (_ctx: unknown, sub: string) => ({ accountId: sub, claims: () => ({ sub }) }),
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: settings.dynamicRegistration },
      clientIdMetadataDocument: { enabled: settings.metadataFetch !== undefined, ack: 'draft-02' },
      revocation: { enabled: true, allowedPolicy: tokenOfCallingClient },
      dPoP: !settings.dpop ? { enabled: false } : settings.dpopNonce ? { enabled: true, nonceSecret: randomBytes(32), requireNonce: () => true } : { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => mcpUrl,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, indicator: string) => {
          if (indicator !== mcpUrl) throw new InvalidTarget(`unknown resource ${indicator}`);
          return {
            audience: mcpUrl,
            scope,
            accessTokenTTL: settings.accessTokenTtlSeconds,
            accessTokenFormat: 'opaque',
          };
        },
      },
    },
    // By default refresh tokens need offline_access, which MCP clients do not ask for.
    issueRefreshToken: (_ctx: unknown, client: ProviderClient) =>
      settings.issuesRefreshTokens && client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: true,
    // Tokens would otherwise die with the browser session that approved them.
    expiresWithSession: () => false,
    ttl: {
      AccessToken: () => settings.accessTokenTtlSeconds,
      AuthorizationCode: AUTHORIZATION_CODE_TTL_SECONDS,
      RefreshToken: settings.refreshTokenTtlSeconds,
      Grant: grantTtlSeconds,
      Session: grantTtlSeconds,
      Interaction: INTERACTION_TTL_SECONDS,
      IdToken: 60 * 60,
    },
    renderError: renderErrorPage,
  };
}

// An access token of the static client for the MCP URL, as a grant of the provider's own would issue.
async function issueAccessToken(provider: OidcProvider, clientId: string, accountId: string, scope: string, jkt: string | undefined, mcpUrl: string, ttl: number): Promise<{ token: string; expiresIn: number }> {
  const client = await provider.Client.find(clientId);
  const token = new provider.AccessToken({ client, accountId, aud: mcpUrl, scope, gty: 'identity', expiresIn: ttl, ...(jkt ? { jkt } : {}) });
  return { token: await token.save(), expiresIn: ttl };
}

function signingKey(): Record<string, unknown> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: randomUUID() };
}

// RFC 7009 §2.1: a client may only revoke its own tokens.
function tokenOfCallingClient(
  _ctx: unknown,
  client: { clientId: string },
  token: { clientId: string },
): boolean {
  return token.clientId === client.clientId;
}

async function renderErrorPage(
  ctx: Context,
  out: { error: string; error_description?: string },
): Promise<void> {
  ctx.type = 'html';
  ctx.body = page(
    'Error',
    `<h1>${escapeHtml(out.error)}</h1><p>${escapeHtml(out.error_description ?? '')}</p>`,
  );
}

function countEndpointOutcomes(counters: FakeUpstreamCounters) {
  return async function countEndpointOutcome(ctx: ProviderContext, next: Next): Promise<void> {
    await next();
    const ok = ctx.status === 200 || ctx.status === 201;
    switch (ctx.oidc?.route) {
      case 'token': {
        const grantType = ctx.oidc.params?.['grant_type'];
        const proven = ctx.get('dpop') !== '';
        if (!ok) counters.failedTokenRequests += 1;
        if (!ok && (ctx.body as { error?: unknown } | undefined)?.error === 'use_dpop_nonce') counters.tokenNonceChallenges += 1;
        else if (grantType === 'authorization_code' && ok) {
          counters.codeExchanges += 1;
          if (proven) counters.dpopCodeExchanges += 1;
        } else if (grantType === 'refresh_token' && ok) {
          counters.refreshGrants += 1;
          if (proven) counters.dpopRefreshGrants += 1;
        }
        break;
      }
      case 'registration':
        if (ok) counters.registrations += 1;
        break;
      case 'revocation':
        if (ok) counters.revocations += 1;
        break;
    }
  };
}

function authorizationServerApp(provider: OidcProvider, mcpUrl: string, state: UpstreamState): Koa {
  const router = new Router();
  router.get('/interaction/:uid', async function showInteraction(ctx) {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const hint = stringParam(details.params, 'login_hint');
    const automatic = state.autoLogin === undefined ? undefined : (hint ?? state.autoLogin);
    if (automatic !== undefined) {
      await finishWithLoginAndConsent(ctx, provider, details, automatic, mcpUrl);
      return;
    }
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    ctx.body = interactionPage(details, hint ?? '');
  });
  router.post('/interaction/:uid', async function submitInteraction(ctx) {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const login = (await readForm(ctx.req)).get('login')?.trim();
    if (!login) throw httpError(400, 'login is required');
    await finishWithLoginAndConsent(ctx, provider, details, login, mcpUrl);
  });
  router.post('/interaction/:uid/abort', async function abortInteraction(ctx) {
    await provider.interactionFinished(
      ctx.req,
      ctx.res,
      { error: 'access_denied', error_description: 'End-User aborted interaction' },
      { mergeWithLastSubmission: false },
    );
    // interactionFinished has written the redirect itself.
    ctx.respond = false;
  });

  const handOver = provider.callback();
  const app = new Koa();
  app.use(router.routes());
  app.use(function handOverToProvider(ctx) {
    // The provider writes the response itself; Koa must not touch it afterwards.
    ctx.respond = false;
    return handOver(ctx.req, ctx.res);
  });
  return app;
}

// Login and consent in one step. The scope is granted as an OIDC scope and as a resource scope:
// granting only the latter makes the consent prompt come back.
async function finishWithLoginAndConsent(
  ctx: Context,
  provider: OidcProvider,
  details: InteractionDetails,
  accountId: string,
  mcpUrl: string,
): Promise<void> {
  const clientId = stringParam(details.params, 'client_id');
  if (!clientId) throw httpError(400, 'client_id missing from the interaction');
  const scope = stringParam(details.params, 'scope') ?? '';
  const grant = new provider.Grant({ accountId, clientId });
  grant.addOIDCScope(scope);
  grant.addResourceScope(mcpUrl, scope);
  const grantId = await grant.save();
  await provider.interactionFinished(
    ctx.req,
    ctx.res,
    { login: { accountId }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
  // interactionFinished has written the redirect itself.
  ctx.respond = false;
}

interface StoredPayload {
  readonly [field: string]: unknown;
  accountId?: string;
  grantId?: string;
  uid?: string;
  userCode?: string;
  consumed?: number;
}

interface StoredEntry {
  payload: StoredPayload;
  expiresAt: number;
}

// The built-in memory adapter is an LRU capped at 1000 entries that warns on every start, and it
// cannot list grants by account. Linear scans are fine at test sizes.
class ModelStore {
  readonly #entries = new Map<string, StoredEntry>();

  set(model: string, id: string, payload: StoredPayload, expiresInSeconds: number | undefined): void {
    const expiresAt = expiresInSeconds === undefined ? Infinity : Date.now() + expiresInSeconds * 1000;
    this.#entries.set(`${model}:${id}`, { payload, expiresAt });
  }

  get(model: string, id: string): StoredPayload | undefined {
    const key = `${model}:${id}`;
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  delete(model: string, id: string): void {
    this.#entries.delete(`${model}:${id}`);
  }

  idsWhere(model: string, matches: (payload: StoredPayload) => boolean): string[] {
    const prefix = `${model}:`;
    const now = Date.now();
    return [...this.#entries]
      .filter(([key, entry]) => key.startsWith(prefix) && entry.expiresAt > now && matches(entry.payload))
      .map(([key]) => key.slice(prefix.length));
  }
}

class ModelStoreAdapter {
  readonly #model: string;
  readonly #store: ModelStore;

  constructor(model: string, store: ModelStore) {
    this.#model = model;
    this.#store = store;
  }

  async upsert(id: string, payload: StoredPayload, expiresIn?: number): Promise<void> {
    this.#store.set(this.#model, id, payload, expiresIn);
  }

  async find(id: string): Promise<StoredPayload | undefined> {
    return this.#store.get(this.#model, id);
  }

  async findByUid(uid: string): Promise<StoredPayload | undefined> {
    return this.#findWhere((payload) => payload.uid === uid);
  }

  async findByUserCode(userCode: string): Promise<StoredPayload | undefined> {
    return this.#findWhere((payload) => payload.userCode === userCode);
  }

  async consume(id: string): Promise<void> {
    const payload = this.#store.get(this.#model, id);
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id: string): Promise<void> {
    this.#store.delete(this.#model, id);
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    for (const id of this.#store.idsWhere(this.#model, (payload) => payload.grantId === grantId)) {
      this.#store.delete(this.#model, id);
    }
  }

  #findWhere(matches: (payload: StoredPayload) => boolean): StoredPayload | undefined {
    const [id] = this.#store.idsWhere(this.#model, matches);
    return id === undefined ? undefined : this.#store.get(this.#model, id);
  }
}

async function revokeGrant(provider: OidcProvider, grantId: string): Promise<void> {
  const grant = await provider.Grant.find(grantId);
  await Promise.all([
    provider.AccessToken.revokeByGrantId(grantId),
    provider.RefreshToken.revokeByGrantId(grantId),
    provider.AuthorizationCode.revokeByGrantId(grantId),
    grant?.destroy(),
  ]);
}

function interactionPage(details: InteractionDetails, login: string): string {
  const uid = encodeURIComponent(details.uid);
  const client = escapeHtml(stringParam(details.params, 'client_id') ?? '');
  const scope = escapeHtml(stringParam(details.params, 'scope') ?? '');
  return page(
    'Sign in',
    `<h1>Sign in</h1>
<p>Client <code>${client}</code> asks for <code>${scope}</code>.</p>
<form method="post" action="/interaction/${uid}">
  <label for="login">User name</label>
  <input id="login" name="login" value="${escapeHtml(login)}" autocomplete="username" required>
  <button type="submit">Sign in</button>
</form>
<form method="post" action="/interaction/${uid}/abort">
  <button type="submit">Cancel</button>
</form>`,
  );
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title></head>
<body>${body}</body></html>`;
}

interface McpHandlerDeps {
  provider: OidcProvider;
  settings: UpstreamSettings;
  issuer: string;
  mcpUrl: string;
  resourceMetadataUrl: string | undefined;
  state: UpstreamState;
}

function mcpRequestHandler(deps: McpHandlerDeps) {
  const { settings, mcpUrl, state } = deps;
  const prmPaths = new Set([PRM_PATH, `${PRM_PATH}${MCP_PATH}`]);
  return async function handleMcpHttpRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const { pathname } = new URL(req.url ?? '/', mcpUrl);
      if (settings.protectedResourceMetadata && req.method === 'GET' && prmPaths.has(pathname)) {
        sendJson(res, 200, protectedResourceMetadata(deps));
        return;
      }
      if (pathname !== MCP_PATH) {
        sendJson(res, 404, { error: 'not_found' });
        return;
      }
      state.counters.mcpRequests += 1;
      const auth = await authenticate(deps, req.headers.authorization, req);
      if ('error' in auth && auth.error === 'use_dpop_nonce') {
        state.counters.resourceNonceChallenges += 1;
        res.setHeader('WWW-Authenticate', `DPoP error="use_dpop_nonce", error_description="${auth.description}"`);
        res.setHeader('DPoP-Nonce', state.resourceNonce);
        sendJson(res, 401, { error: auth.error, error_description: auth.description });
        return;
      }
      if ('error' in auth && req.headers.authorization === undefined) {
        state.counters.unauthenticatedMcpRequests += 1;
      } else if ('error' in auth) {
        state.counters.rejectedMcpRequests += 1;
        if (req.method === 'POST') state.counters.rejectedMcpPosts += 1;
      }
      if ('error' in auth) {
        res.setHeader('WWW-Authenticate', bearerChallenge(deps, auth));
        sendJson(res, 401, { error: auth.error ?? 'invalid_token', error_description: auth.description });
        return;
      }
      if (req.method !== 'POST') {
        res.setHeader('Allow', 'POST');
        sendJson(res, 405, { error: 'method_not_allowed' });
        return;
      }
      const body = JSON.parse((await readBody(req, MAX_MCP_BODY_BYTES)).toString('utf8') || 'null') as unknown;
      const tool = (body as { method?: unknown; params?: { name?: unknown } } | null)?.method === 'tools/call' ? (body as { params?: { name?: unknown } }).params?.name : undefined;
      const needed = typeof tool === 'string' ? (settings.toolScopes[tool] ?? []) : [];
      if (needed.some((scope) => !auth.scopes.includes(scope))) {
        state.counters.insufficientScopeRefusals += 1;
        res.setHeader('WWW-Authenticate', `Bearer error="insufficient_scope", scope="${needed.join(' ')}", error_description="${tool} needs more scopes"`);
        sendJson(res, 403, { error: 'insufficient_scope' });
        return;
      }
      await serveMcp(req, res, auth, settings.preset, state.toolCalls, body);
    } catch (error) {
      console.error('fake upstream MCP server failed', error);
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
      else res.destroy();
    }
  };
}

// RFC 9728 §2. Both well-known forms name the MCP URL, so a client falling back to the root form
// still asks for the one resource tokens are issued for.
function protectedResourceMetadata({ mcpUrl, settings, state }: McpHandlerDeps): Record<string, unknown> {
  return {
    resource: mcpUrl,
    authorization_servers: [state.authorizationServer],
    scopes_supported: settings.scopes,
    bearer_methods_supported: ['header'],
    resource_name: `Fake ${settings.preset} MCP server`,
  };
}

interface BearerFailure {
  // Absent when no token was presented (RFC 6750 §3.1).
  error: 'invalid_token' | 'use_dpop_nonce' | undefined;
  description: string;
}

async function authenticate(
  { provider, mcpUrl, issuer, state, settings }: McpHandlerDeps,
  authorization: string | undefined,
  req: IncomingMessage,
): Promise<AuthInfo | BearerFailure> {
  if (authorization === undefined) {
    return { error: undefined, description: 'an access token is required' };
  }
  const match = /^(?:Bearer|(DPoP)) ([\x21-\x7e]+)$/i.exec(authorization);
  if (!match?.[2]) return { error: 'invalid_token', description: 'malformed Authorization header' };
  const dpopScheme = match[1] !== undefined;
  const accessToken = match[2];
  if (state.authorizationServer !== issuer) {
    return { error: 'invalid_token', description: 'this resource now trusts another authorization server' };
  }
  const token = await provider.AccessToken.find(accessToken);
  if (!token || token.isExpired) {
    return { error: 'invalid_token', description: 'unknown, revoked or expired access token' };
  }
  // RFC 9449 §7.1: a bound token only under the DPoP scheme, with a proof of its key for this request.
  if (token.jkt || dpopScheme) {
    const proven = dpopScheme ? await verifyDpopProof(req.headers.dpop, { htm: req.method ?? '', htu: mcpUrl, accessToken }) : undefined;
    if (!token.jkt || proven !== token.jkt) return { error: 'invalid_token', description: 'the token is DPoP-bound: a DPoP proof of its key is required' };
    if (settings.dpopNonce && decodeJwt(String(req.headers.dpop)).nonce !== state.resourceNonce) return { error: 'use_dpop_nonce', description: 'the DPoP proof must carry the nonce this server gave' };
  }
  const audiences = Array.isArray(token.aud) ? token.aud : [token.aud];
  if (!audiences.includes(mcpUrl)) {
    return { error: 'invalid_token', description: 'access token is not meant for this resource' };
  }
  return {
    token: accessToken,
    clientId: token.clientId,
    scopes: token.scope ? token.scope.split(' ') : [],
    expiresAt: token.exp,
    resource: new URL(mcpUrl),
    extra: { accountId: token.accountId },
  };
}

// RFC 6750 §3, with `resource_metadata` (RFC 9728 §5.1) when metadata is served.
function bearerChallenge({ resourceMetadataUrl, settings }: McpHandlerDeps, failure: BearerFailure): string {
  const params: [string, string][] = [];
  if (failure.error) params.push(['error', failure.error], ['error_description', failure.description]);
  if (resourceMetadataUrl) params.push(['resource_metadata', resourceMetadataUrl]);
  params.push(['scope', settings.scopes.join(' ')]);
  return `Bearer ${params.map(([name, value]) => `${name}="${value}"`).join(', ')}`;
}

async function serveMcp(
  req: IncomingMessage,
  res: ServerResponse,
  auth: AuthInfo,
  preset: FakeUpstreamPreset,
  toolCalls: FakeUpstreamToolCall[],
  body: unknown,
): Promise<void> {
  // Stateless: a fresh server and transport per request, as the SDK's stateless examples do.
  const server = buildMcpServer(preset, toolCalls);
  const transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: undefined,
    enableJsonResponse: true,
  });
  res.on('close', () => {
    void transport.close();
    void server.close();
  });
  await server.connect(transport);
  await transport.handleRequest(Object.assign(req, { auth }), res, body);
}

function buildMcpServer(preset: FakeUpstreamPreset, toolCalls: FakeUpstreamToolCall[]): McpServer {
  const server = new McpServer({ name: `fake-${preset}`, version: '1.0.0' });
  server.registerTool(
    'whoami',
    { description: 'Returns the account id the access token belongs to.' },
    ({ authInfo }) => {
      const accountId = accountIdOf(authInfo);
      toolCalls.push({ accountId, tool: 'whoami' });
      return { content: [{ type: 'text', text: accountId }] };
    },
  );
  server.registerTool(
    'echo',
    { description: 'Returns its text argument.', inputSchema: { text: z.string() } },
    ({ text }, { authInfo }) => {
      toolCalls.push({ accountId: accountIdOf(authInfo), tool: 'echo' });
      return { content: [{ type: 'text', text }] };
    },
  );
  return server;
}

function accountIdOf(authInfo: AuthInfo | undefined): string {
  const accountId = authInfo?.extra?.['accountId'];
  if (typeof accountId !== 'string') throw new Error('tool called without an authenticated account');
  return accountId;
}

async function followAuthorization(start: URL, issuer: string, login: string | undefined): Promise<URL> {
  const cookies = new Map<string, string>();
  let url = start;
  let form: URLSearchParams | undefined;
  for (let hop = 0; hop < MAX_AUTHORIZATION_HOPS; hop += 1) {
    if (url.origin !== issuer) return url;
    const response = await fetch(url, {
      method: form ? 'POST' : 'GET',
      body: form,
      redirect: 'manual',
      headers: { cookie: [...cookies].map(([name, value]) => `${name}=${value}`).join('; ') },
    });
    storeCookies(cookies, response.headers.getSetCookie());
    const location = response.headers.get('location');
    const body = await response.text();
    if (location !== null) {
      url = new URL(location, url);
      form = undefined;
    } else if (response.status === 200 && !form && url.pathname.startsWith('/interaction/')) {
      if (login === undefined) {
        throw new Error('the interaction page needs a login: pass one or set autoLogin');
      }
      form = new URLSearchParams({ login });
    } else {
      throw new Error(`authorization stopped at ${url.href} with ${response.status}: ${body.slice(0, 500)}`);
    }
  }
  throw new Error(`authorization did not leave ${issuer} after ${MAX_AUTHORIZATION_HOPS} redirects`);
}

// Path-blind: every cookie of the one origin goes with every request, which the provider tolerates.
function storeCookies(cookies: Map<string, string>, setCookies: string[]): void {
  for (const setCookie of setCookies) {
    const [pair = '', ...attributes] = setCookie.split(';');
    const separator = pair.indexOf('=');
    const name = pair.slice(0, separator).trim();
    const value = pair.slice(separator + 1).trim();
    const expired = attributes.some((attribute) => {
      const [key = '', rawValue = ''] = attribute.split('=');
      const attributeName = key.trim().toLowerCase();
      if (attributeName === 'max-age') return Number(rawValue) <= 0;
      if (attributeName === 'expires') return Date.parse(rawValue) <= Date.now();
      return false;
    });
    if (expired || value === '') cookies.delete(name);
    else cookies.set(name, value);
  }
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  return new URLSearchParams((await readBody(req, MAX_FORM_BYTES)).toString('utf8'));
}

async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw httpError(413, 'body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function httpError(status: number, message: string): Error {
  return Object.assign(new Error(message), { status, expose: true });
}

function stringParam(params: Readonly<Record<string, unknown>>, name: string): string | undefined {
  const value = params[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Cache-Control', 'no-store');
  res.end(JSON.stringify(body));
}

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

function zeroCounters(): FakeUpstreamCounters {
  return {
    codeExchanges: 0,
    refreshGrants: 0,
    failedTokenRequests: 0,
    registrations: 0,
    revocations: 0,
    mcpRequests: 0,
    rejectedMcpRequests: 0,
    rejectedMcpPosts: 0,
    unauthenticatedMcpRequests: 0,
    insufficientScopeRefusals: 0,
    dpopCodeExchanges: 0,
    dpopRefreshGrants: 0,
    tokenNonceChallenges: 0,
    resourceNonceChallenges: 0,
    tokenExchanges: 0,
    jwtBearerGrants: 0,
    refusedIdentityGrants: 0,
  };
}

async function listenOnLoopback(): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

function originOf(server: Server): string {
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function closeServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve, reject) =>
    server.close((error) => (error ? reject(error) : resolve())),
  );
  server.closeAllConnections();
  await closed;
}

import type { UpstreamConfig } from '../config.js';
import type { UpstreamEnterpriseConfig, UpstreamTokenExchangeConfig } from '../config/upstream-auth/index.js';
import type { IdpTokens, IdpTokenSet } from '../identity/idp-tokens.js';
import type { OidcLogin } from '../identity/oidc-login.js';
import type { Logger } from '../log.js';
import { JsonRpcError } from '../mcp/json-rpc.js';
import type { McpCaller, McpUpstream } from '../mcp/types.js';
import { enterpriseToken } from './enterprise.js';
import { exchangeIdpToken } from './token-exchange.js';
import { BrokeredTokenError, type BrokeredToken } from './token-request.js';
import type { BrokeredUpstream } from './types.js';

export { BrokeredTokenError } from './token-request.js';

/** JSON-RPC error code of a call the gateway could not get upstream credentials for (server-defined range). */
export const upstreamCredentialsUnavailable = -32001;

/** What {@link brokeredTokens} needs. */
export interface BrokeredTokenDeps {
  upstreams: UpstreamConfig[];
  /** The IdP tokens kept at sign-in (`oidc` identity mode); absent in other modes. */
  idpTokens: IdpTokens | undefined;
  /** The gateway's client at the IdP (`oidc` identity mode), which asks for ID-JAGs. */
  idp: OidcLogin | undefined;
  log: Logger;
}

/** A token this close to its expiry (seconds) is replaced before use. */
const expirySkewSeconds = 30;
/** Tokens held per process at most; the oldest go first. */
const maxCached = 10_000;

type Brokered = BrokeredUpstream<UpstreamTokenExchangeConfig> | BrokeredUpstream<UpstreamEnterpriseConfig>;

function isBrokered(upstream: UpstreamConfig): upstream is Brokered {
  return upstream.auth.type === 'token-exchange' || upstream.auth.type === 'enterprise';
}

/**
 * Credentials at upstreams the gateway reaches on the user's behalf without a browser step: it
 * trades the user's IdP token (kept sealed at sign-in) at the upstream's authorization server.
 * Access tokens live in this process only (a map bounded in size, never written anywhere), are
 * replaced shortly before they expire, and dropped after a 401; concurrent calls share one request.
 */
export function brokeredTokens(deps: BrokeredTokenDeps) {
  const byName = new Map(deps.upstreams.filter(isBrokered).map((upstream) => [upstream.name, upstream]));
  const cache = new Map<string, BrokeredToken>();
  const pending = new Map<string, Promise<BrokeredToken>>();

  async function idpTokensOf(caller: McpCaller, upstream: Brokered): Promise<IdpTokenSet> {
    const tokens = await deps.idpTokens?.find(caller.userId);
    if (!tokens) {
      throw new BrokeredTokenError(`${upstream.displayName} is reached with your sign-in at the identity provider, which has expired here: sign in again (authorize this application once more).`, true);
    }
    return tokens;
  }

  async function obtain(caller: McpCaller, upstream: Brokered): Promise<BrokeredToken> {
    const idp = await idpTokensOf(caller, upstream);
    if (upstream.auth.type === 'token-exchange') return exchangeIdpToken({ ...upstream, auth: upstream.auth }, idp);
    if (!deps.idp) throw new BrokeredTokenError(`${upstream.displayName} needs users signed in at the identity provider (identity mode oidc).`);
    return enterpriseToken({ ...upstream, auth: upstream.auth }, idp, deps.idp);
  }

  async function token(caller: McpCaller, upstream: Brokered): Promise<BrokeredToken> {
    const key = `${caller.userId}\n${upstream.name}`;
    const held = cache.get(key);
    if (held && (held.expiresAt === null || held.expiresAt - Date.now() / 1000 > expirySkewSeconds)) return held;
    let running = pending.get(key);
    if (!running) {
      running = obtain(caller, upstream).finally(() => pending.delete(key));
      pending.set(key, running);
    }
    const fresh = await running;
    cache.delete(key);
    if (cache.size >= maxCached) cache.delete(cache.keys().next().value!);
    cache.set(key, fresh);
    return fresh;
  }

  return {
    /** Whether `upstream` is reached this way. */
    handles(upstream: McpUpstream): boolean {
      return byName.has(upstream.name);
    },

    /** The `Authorization` header for one request; a JSON-RPC error when no token can be had. */
    async headers(caller: McpCaller, upstream: McpUpstream): Promise<Record<string, string>> {
      const config = byName.get(upstream.name);
      if (!config) return {};
      try {
        const held = await token(caller, config);
        return { Authorization: `Bearer ${held.accessToken}` };
      } catch (error) {
        if (!(error instanceof BrokeredTokenError)) throw error;
        deps.log.warn('no upstream token for the user', { upstream: upstream.name, user: caller.userId, reason: error.message });
        throw new JsonRpcError(upstreamCredentialsUnavailable, error.message);
      }
    },

    /** The upstream answered 401: the token is dropped; the first time the request is sent again with a new one. */
    async unauthorized(caller: McpCaller, upstream: McpUpstream, sent: Record<string, string>, retried: boolean): Promise<boolean> {
      const key = `${caller.userId}\n${upstream.name}`;
      const held = cache.get(key);
      if (held && sent.Authorization?.endsWith(` ${held.accessToken}`)) cache.delete(key);
      return !retried;
    },
  };
}

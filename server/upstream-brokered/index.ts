import type { UpstreamConfig } from '../config.js';
import type { UpstreamEnterpriseConfig, UpstreamTokenExchangeConfig } from '../config/upstream-auth/index.js';
import type { IdpTokens, IdpTokenSet } from '../identity/idp-tokens.js';
import type { OidcLogin } from '../identity/oidc-login.js';
import type { Logger } from '../log.js';
import { JsonRpcError } from '../mcp/json-rpc.js';
import type { McpCaller, McpUpstream } from '../mcp/types.js';
import { advertisedDpopAlgorithms, dpopAlgorithm, dpopProof, newDpopKey, type DpopKey } from './dpop.js';
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
/** How long an authorization server's DPoP algorithms are remembered (a failed look-up: a minute). */
const metadataTtlMs = 60 * 60_000;

/** A token held for a user at an upstream, with the DPoP key it is bound to, if any. */
type Held = BrokeredToken & { dpop?: DpopKey | undefined };

/** One request the credentials are for: a DPoP proof names its method and URL. Default: POST to the MCP URL. */
export interface UpstreamRequest {
  method: string;
  url: string;
}

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
  const cache = new Map<string, Held>();
  const pending = new Map<string, Promise<Held>>();
  const dpopAlgs = new Map<string, { at: number; ttl: number; algs: Promise<string[] | undefined> }>();

  /** The DPoP algorithm for an upstream's authorization server, when it advertises one the gateway signs with. */
  async function dpopAlgOf(upstream: Brokered): Promise<string | undefined> {
    const issuer = upstream.auth.issuer;
    if (!issuer) return undefined;
    let known = dpopAlgs.get(issuer);
    if (!known || Date.now() - known.at > known.ttl) {
      const algs = advertisedDpopAlgorithms(issuer);
      known = { at: Date.now(), ttl: metadataTtlMs, algs };
      dpopAlgs.set(issuer, known);
      const entry = known;
      void algs.then((found) => {
        if (!found) entry.ttl = 60_000;
      });
    }
    return dpopAlgorithm(await known.algs);
  }

  async function idpTokensOf(caller: McpCaller, upstream: Brokered): Promise<IdpTokenSet> {
    const tokens = await deps.idpTokens?.find(caller.userId);
    if (!tokens) {
      throw new BrokeredTokenError(`${upstream.displayName} is reached with your sign-in at the identity provider, which has expired here: sign in again (authorize this application once more).`, true);
    }
    return tokens;
  }

  async function obtain(caller: McpCaller, upstream: Brokered): Promise<Held> {
    const idp = await idpTokensOf(caller, upstream);
    // A key per grant: the token this grant yields is bound to it (RFC 9449), and it never leaves the process.
    const alg = await dpopAlgOf(upstream);
    const dpop = alg ? await newDpopKey(alg) : undefined;
    let token: BrokeredToken;
    if (upstream.auth.type === 'token-exchange') {
      token = await exchangeIdpToken({ ...upstream, auth: upstream.auth }, idp, dpop?.handle);
    } else {
      if (!deps.idp) throw new BrokeredTokenError(`${upstream.displayName} needs users signed in at the identity provider (identity mode oidc).`);
      token = await enterpriseToken({ ...upstream, auth: upstream.auth }, idp, deps.idp, dpop?.handle);
    }
    return token.tokenType === 'dpop' ? { ...token, dpop } : token;
  }

  async function token(caller: McpCaller, upstream: Brokered): Promise<Held> {
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

    /**
     * The `Authorization` header for one request (`DPoP` with a proof of the grant's key for
     * `request` when the token is bound to one); a JSON-RPC error when no token can be had.
     */
    async headers(caller: McpCaller, upstream: McpUpstream, request?: UpstreamRequest): Promise<Record<string, string>> {
      const config = byName.get(upstream.name);
      if (!config) return {};
      try {
        const held = await token(caller, config);
        if (!held.dpop) return { Authorization: `Bearer ${held.accessToken}` };
        const proof = await dpopProof(held.dpop, request?.method ?? 'POST', request?.url ?? config.mcpUrl, held.accessToken);
        return { Authorization: `DPoP ${held.accessToken}`, DPoP: proof };
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

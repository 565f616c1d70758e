import { importJWK } from 'jose';
import * as oauth from 'oauth4webapi';
import { dpopAlgorithm } from '../../server/dpop-algorithm.js';
import { upstreamTokenLabel, type StoredDpopKey } from '../../server/store/sealed-labels.js';
import type { Sealer } from './client-auth.js';
import type { OAuthUpstream } from './discovery.js';

/** Authorization servers whose nonce is remembered at most. */
const maxNonces = 1_000;

/** A grant's DPoP key as the token requests use it: what is stored (sealed) and oauth4webapi's handle. */
export interface GrantDpopKey {
  stored: StoredDpopKey;
  handle: oauth.DPoPHandle;
}

/**
 * The DPoP keys of users' grants at `oauth` upstreams (RFC 9449): one key pair per grant, created
 * at the code exchange when the authorization server advertises an algorithm the gateway signs with
 * (`dpop_signing_alg_values_supported`, §5.1) and the upstream does not turn DPoP off; kept sealed
 * in the grant's token row and loaded from there for every refresh. The latest nonce each
 * authorization server gave (§8) is remembered per origin for the next request there.
 */
export function createDpopKeys(cipher: Sealer) {
  const nonces = new Map<string, string>();

  function handleOf(keyPair: CryptoKeyPair): oauth.DPoPHandle {
    return oauth.DPoP({}, keyPair, {
      [oauth.modifyAssertion]: (_header, payload) => {
        if (payload['nonce'] !== undefined || typeof payload['htu'] !== 'string') return;
        const nonce = nonces.get(new URL(payload['htu']).origin);
        if (nonce) payload['nonce'] = nonce;
      },
    });
  }

  async function keyPairOf(stored: StoredDpopKey): Promise<CryptoKeyPair> {
    const { kty, crv, x, y, n, e } = stored.jwk;
    const publicJwk = Object.fromEntries(Object.entries({ kty, crv, x, y, n, e }).filter(([, value]) => value !== undefined));
    return {
      privateKey: (await importJWK(stored.jwk, stored.alg)) as CryptoKey,
      publicKey: (await importJWK(publicJwk, stored.alg, { extractable: true })) as CryptoKey,
    };
  }

  return {
    /** A new key for a grant at `upstream`, or undefined when its authorization server `as` is not to be sent proofs. */
    async create(upstream: OAuthUpstream, as: oauth.AuthorizationServer): Promise<GrantDpopKey | undefined> {
      if (upstream.auth.dpop === 'off') return undefined;
      const alg = dpopAlgorithm(as.dpop_signing_alg_values_supported);
      if (!alg) return undefined;
      const keyPair = await oauth.generateKeyPair(alg, { extractable: true });
      const stored: StoredDpopKey = { alg, jwk: await crypto.subtle.exportKey('jwk', keyPair.privateKey) };
      return { stored, handle: handleOf(keyPair) };
    },

    /** The key of a stored grant, from its sealed form (`upstream_tokens.dpop_key`). */
    async open(sealed: string, userId: string, upstream: string): Promise<GrantDpopKey> {
      const stored = JSON.parse(cipher.open(sealed, upstreamTokenLabel(userId, upstream, 'dpop'))) as StoredDpopKey;
      return { stored, handle: handleOf(await keyPairOf(stored)) };
    },

    /** `key` sealed for the token row of `userId` at `upstream`. */
    seal(key: StoredDpopKey, userId: string, upstream: string): string {
      return cipher.seal(JSON.stringify(key), upstreamTokenLabel(userId, upstream, 'dpop'));
    },

    /**
     * Sends a token request (`send`, with the key's handle when there is one) and processes its
     * answer; an authorization server answering `use_dpop_nonce` (RFC 9449 §8) gets the request
     * once more with the nonce it gave. Whatever nonce an answer carries is remembered.
     */
    async tokenRequest<T>(key: GrantDpopKey | undefined, endpoint: string, send: (dpop: oauth.DPoPHandle | undefined) => Promise<Response>, processResponse: (response: Response) => Promise<T>): Promise<T> {
      const origin = new URL(endpoint).origin;
      const attempt = async () => {
        const response = await send(key?.handle);
        const nonce = response.headers.get('dpop-nonce');
        if (key && nonce) {
          if (nonces.size >= maxNonces && !nonces.has(origin)) nonces.clear();
          nonces.set(origin, nonce);
        }
        return processResponse(response);
      };
      try {
        return await attempt();
      } catch (error) {
        if (!key || !oauth.isDPoPNonceError(error)) throw error;
        return attempt();
      }
    },
  };
}

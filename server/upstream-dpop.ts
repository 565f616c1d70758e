import { importJWK, type JWK } from 'jose';
import type { TokenCipher } from './crypto/token-cipher.js';
import { dpopNonceOf, type UpstreamChallenge } from './mcp/bearer-challenge.js';
import { upstreamTokenLabel, type StoredDpopKey } from './store/sealed-labels.js';
import type { UpstreamTokenRecord } from './store/store.js';
import { dpopProof, publicJwkOf, type DpopKey } from './upstream-brokered/dpop.js';
import type { UpstreamRequest } from './upstream-brokered/index.js';

/** Keys and nonces held per process at most; the oldest go first. */
const maxHeld = 10_000;

type ProofKey = Pick<DpopKey, 'alg' | 'privateKey' | 'publicJwk'>;

function remember<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  if (map.size >= maxHeld) map.delete(map.keys().next().value!);
  map.set(key, value);
}

/**
 * How a user's stored access token at an `oauth` upstream is presented (RFC 6750, RFC 9449): as
 * `Bearer`, or, when the grant is bound to a DPoP key (sealed in the token row by the code exchange),
 * as `DPoP` with a fresh proof of that key for each request, carrying the nonce the upstream last
 * asked for. Keys are opened once per process and held by their sealed form.
 */
export function upstreamTokenPresentation(cipher: TokenCipher) {
  const keys = new Map<string, Promise<ProofKey>>();
  const nonces = new Map<string, string>();

  async function open(tokens: UpstreamTokenRecord & { dpopKey: string }): Promise<ProofKey> {
    const stored = JSON.parse(cipher.open(tokens.dpopKey, upstreamTokenLabel(tokens.userId, tokens.upstream, 'dpop'))) as StoredDpopKey;
    return { alg: stored.alg, privateKey: (await importJWK(stored.jwk as JWK, stored.alg)) as CryptoKey, publicJwk: publicJwkOf(stored.jwk as JWK) };
  }

  function keyOf(tokens: UpstreamTokenRecord & { dpopKey: string }): Promise<ProofKey> {
    let key = keys.get(tokens.dpopKey);
    if (!key) {
      key = open(tokens);
      key.catch(() => keys.delete(tokens.dpopKey));
      remember(keys, tokens.dpopKey, key);
    }
    return key;
  }

  function accessToken(tokens: UpstreamTokenRecord): string {
    return cipher.open(tokens.accessToken, upstreamTokenLabel(tokens.userId, tokens.upstream, 'access'));
  }

  return {
    /** The access token of `tokens`, opened. */
    accessToken,

    /** The headers presenting `tokens` for `request` (default: POST to `defaultUrl`). */
    async headers(tokens: UpstreamTokenRecord, defaultUrl: string, request?: UpstreamRequest): Promise<Record<string, string>> {
      const token = accessToken(tokens);
      if (!tokens.dpopKey) return { Authorization: `Bearer ${token}` };
      const url = request?.url ?? defaultUrl;
      const proof = await dpopProof(await keyOf({ ...tokens, dpopKey: tokens.dpopKey }), request?.method ?? 'POST', url, token, nonces.get(new URL(url).origin));
      return { Authorization: `DPoP ${token}`, DPoP: proof };
    },

    /**
     * Whether the upstream's 401 to a request sent with `sent` (to `url`) asks for a DPoP nonce
     * (RFC 9449 §9) for the grant's bound token: then the nonce is kept for every later request
     * there and the request is to be sent once more as it was, with no new token.
     */
    nonceRequired(tokens: UpstreamTokenRecord, url: string, sent: Record<string, string>, challenge: UpstreamChallenge | undefined): boolean {
      const nonce = dpopNonceOf(challenge);
      if (!nonce || !tokens.dpopKey || sent['DPoP'] === undefined) return false;
      remember(nonces, new URL(url).origin, nonce);
      return true;
    },
  };
}

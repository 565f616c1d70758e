/**
 * The associated data a sealed upstream token is sealed with: the row and column it is stored in,
 * so a sealed token copied to another row or column does not open there. Imports nothing, so the
 * activities (which seal) and the server (which opens and re-seals) share it.
 */

/** Which of a user's upstream tokens (`dpop`: the private key the access token is bound to, RFC 9449). */
export type UpstreamTokenKind = 'access' | 'refresh' | 'dpop';

/** `upstream_tokens:<userId>:<upstream>:<kind>`: the label of a user's sealed token at one upstream. */
export function upstreamTokenLabel(userId: string, upstream: string, kind: UpstreamTokenKind): string {
  return `upstream_tokens:${userId}:${upstream}:${kind}`;
}

/**
 * A grant's DPoP key (RFC 9449) as it is sealed in `upstream_tokens.dpop_key`: the signing
 * algorithm and the private key as a JWK (RFC 7517), its public half included.
 */
export interface StoredDpopKey {
  alg: string;
  jwk: JsonWebKey;
}

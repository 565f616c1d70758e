/**
 * The DPoP (RFC 9449) signing algorithms the gateway uses toward upstreams. Imports nothing, so the
 * activities (token requests) and the server (resource requests) share it.
 */

/** Algorithms the gateway signs proofs with, in order of preference. */
const preferred = ['ES256', 'EdDSA', 'PS256', 'RS256'];

/** The algorithm to use with an authorization server advertising `supported` (`dpop_signing_alg_values_supported`, RFC 9449 §5.1), if any is shared. */
export function dpopAlgorithm(supported: readonly string[] | undefined): string | undefined {
  return preferred.find((alg) => supported?.includes(alg));
}

import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, EmbeddedJWK, jwtVerify } from 'jose';

/** Algorithms a DPoP proof may be signed with, as the OAuth server accepts them at its token endpoint. */
export const dpopAlgorithms = ['ES256', 'Ed25519', 'EdDSA'];

/** How far a proof's `iat` may be from now (RFC 9449 §11.1). */
const iatWindowSeconds = 60;

/** A DPoP proof that failed a check (RFC 9449 §7.1 `invalid_dpop_proof`); the message says which. */
export class DpopProofError extends Error {
  override name = 'DpopProofError';
}

/** What a checked proof binds: the key's thumbprint (RFC 7638) and the proof's `jti`. */
export interface CheckedDpopProof {
  jkt: string;
  jti: string;
}

/**
 * Checks a DPoP proof (RFC 9449 §4.3): signed by the JWK in its header with an asymmetric
 * algorithm, `typ` `dpop+jwt`, `htm` the request method, `htu` the request URL (query and
 * fragment ignored), `iat` within a minute, a `jti`, and, presented with an access token at a
 * protected resource (§7.1), `ath` the hash of that token. Replay and a token's `cnf.jkt` are the
 * caller's checks. Throws {@link DpopProofError}.
 */
export async function checkDpopProof(proof: string, request: { method: string; url: string; accessToken?: string }): Promise<CheckedDpopProof> {
  let verified;
  try {
    verified = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: dpopAlgorithms });
  } catch (error) {
    throw new DpopProofError(`the DPoP proof does not verify: ${(error as Error).message}`);
  }
  const { payload, protectedHeader } = verified;
  if (typeof payload.jti !== 'string' || !payload.jti) throw new DpopProofError('the DPoP proof has no jti');
  if (typeof payload.iat !== 'number' || Math.abs(Date.now() / 1000 - payload.iat) > iatWindowSeconds) throw new DpopProofError('the DPoP proof iat is not recent');
  if (payload['htm'] !== request.method) throw new DpopProofError('the DPoP proof htm is not the request method');
  let htu: URL | null = null;
  try {
    htu = new URL(String(payload['htu']));
    htu.search = '';
    htu.hash = '';
  } catch {
    htu = null;
  }
  if (!htu || htu.href !== new URL(request.url).href) throw new DpopProofError('the DPoP proof htu is not the request URL');
  if (request.accessToken !== undefined && payload['ath'] !== createHash('sha256').update(request.accessToken).digest('base64url')) throw new DpopProofError('the DPoP proof ath is not the hash of the access token');
  if (!protectedHeader.jwk) throw new DpopProofError('the DPoP proof names no key');
  return { jkt: await calculateJwkThumbprint(protectedHeader.jwk), jti: payload.jti };
}

import { randomBytes } from 'node:crypto';
import { exportJWK, SignJWT, type JWK } from 'jose';
import * as oauth from 'oauth4webapi';
import { isLoopbackHttp } from './token-request.js';

/** The key a grant's access token is bound to (DPoP, RFC 9449), and the handle its token requests sign with. */
export interface DpopKey {
  alg: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
  /** For oauth4webapi's token requests (keeps the authorization server's nonces). */
  handle: oauth.DPoPHandle;
}

export { dpopAlgorithm } from '../dpop-algorithm.js';

/** A fresh key pair for one grant; the private key cannot be exported. */
export async function newDpopKey(alg: string): Promise<DpopKey> {
  const keyPair = await oauth.generateKeyPair(alg);
  return { alg, privateKey: keyPair.privateKey, publicJwk: publicJwkOf(await exportJWK(keyPair.publicKey)), handle: oauth.DPoP({}, keyPair) };
}

/** The public members of a key's JWK (RFC 7517), for a proof's `jwk` header: never a private one. */
export function publicJwkOf(jwk: JWK): JWK {
  const { kty, crv, x, y, n, e } = jwk;
  return Object.fromEntries(Object.entries({ kty, crv, x, y, n, e }).filter(([, value]) => value !== undefined)) as JWK;
}

/**
 * A DPoP proof (RFC 9449 §4.2) of `key` for one request to a protected resource: `htm`, `htu`
 * (without query and fragment), `iat`, a fresh `jti`, `ath`, the access token's SHA-256, and the
 * `nonce` the resource server asked for, if any (§9).
 */
export async function dpopProof(key: Pick<DpopKey, 'alg' | 'privateKey' | 'publicJwk'>, method: string, url: string, accessToken: string, nonce?: string): Promise<string> {
  const target = new URL(url);
  const ath = Buffer.from(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(accessToken))).toString('base64url');
  return new SignJWT({ htm: method.toUpperCase(), htu: `${target.origin}${target.pathname}`, jti: randomBytes(16).toString('base64url'), ath, ...(nonce ? { nonce } : {}) })
    .setProtectedHeader({ alg: key.alg, typ: 'dpop+jwt', jwk: key.publicJwk })
    .setIssuedAt()
    .sign(key.privateKey);
}

/**
 * The DPoP algorithms the authorization server `issuer` advertises (`dpop_signing_alg_values_supported`,
 * RFC 9449 §5.1) in its RFC 8414 metadata; undefined when it advertises none or has no metadata.
 */
export async function advertisedDpopAlgorithms(issuer: string, timeoutMs = 10_000): Promise<string[] | undefined> {
  const url = new URL(issuer);
  const options = { algorithm: 'oauth2' as const, signal: AbortSignal.timeout(timeoutMs), [oauth.allowInsecureRequests]: isLoopbackHttp(issuer) };
  try {
    const as = await oauth.processDiscoveryResponse(url, await oauth.discoveryRequest(url, options));
    const algs = as.dpop_signing_alg_values_supported;
    return Array.isArray(algs) && algs.length > 0 ? algs : undefined;
  } catch {
    return undefined;
  }
}

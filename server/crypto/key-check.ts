import { createPublicKey, type JsonWebKey } from 'node:crypto';
import type { Logger } from '../log.js';
import type { ServerKeys } from '../oauth/server-keys.js';
import type { KeyCheckStore } from '../store/store.js';
import { keyFingerprint, type TokenCipher } from './token-cipher.js';

/** One key ring as the key check compares it: key id → fingerprint, and the id that seals or signs. */
export interface RingFingerprints {
  fingerprints: Record<string, string>;
  active: string;
}

/** A disagreement between this process's keys and the fleet's. */
export interface KeyProblem {
  ring: string;
  level: 'error' | 'warn';
  message: string;
}

/** The fingerprints of this process's three key rings; no key leaves in them. */
export function ringFingerprints(keys: { cipher: TokenCipher; keys: ServerKeys }): Record<string, RingFingerprints> {
  // Cookie keys have no ids: each is known by its fingerprint.
  const cookies = keys.keys.cookieKeys.map((key) => keyFingerprint(key));
  // Signing keys are compared by their public half: the fingerprint of what anyone may see.
  const signing = Object.fromEntries(
    keys.keys.jwks.keys.map((jwk) => {
      const { d: _private, ...publicJwk } = jwk;
      const der = createPublicKey({ key: publicJwk as JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'der' });
      return [String(jwk.kid), keyFingerprint(der.toString('base64'))];
    }),
  );
  return {
    encryption: { fingerprints: keys.cipher.fingerprints(), active: keys.cipher.activeKeyId },
    cookies: { fingerprints: Object.fromEntries(cookies.map((fingerprint) => [fingerprint, fingerprint])), active: cookies[0] ?? '' },
    signing: { fingerprints: signing, active: String(keys.keys.jwks.keys[0]?.kid ?? '') },
  };
}

/**
 * Compares this process's key rings with the fleet's (one row per ring in the store, written by the
 * processes that start) and says at start when they differ: a key id the fleet knows with another
 * key, no key in common, or sealing with a key the fleet has moved on from. A process that holds
 * the fleet's sealing key and seals with a newer one is a rotation under way: its ring becomes the
 * fleet's. Returns what it found (also logged).
 */
export async function checkFleetKeys(store: KeyCheckStore, keys: { cipher: TokenCipher; keys: ServerKeys }, log: Logger): Promise<KeyProblem[]> {
  const problems: KeyProblem[] = [];
  const writtenAt = new Date().toISOString();
  for (const [ring, ours] of Object.entries(ringFingerprints(keys))) {
    const fleet = await store.getKeyCheck(ring);
    if (!fleet) {
      await store.putKeyCheck(ring, { ...ours, writtenAt });
      continue;
    }
    const shared = Object.keys(ours.fingerprints).filter((id) => fleet.fingerprints[id] !== undefined);
    const conflicting = shared.filter((id) => fleet.fingerprints[id] !== ours.fingerprints[id]);
    if (conflicting.length > 0) {
      problems.push({ ring, level: 'error', message: `this process's ${ring} keys differ from the fleet's: key id ${conflicting.join(', ')} holds another key here` });
    } else if (shared.length === 0) {
      problems.push({ ring, level: 'error', message: `this process's ${ring} keys differ from the fleet's: none of its keys is one the fleet uses (fleet key checked ${fleet.writtenAt})` });
    } else if (ours.active !== fleet.active && ours.fingerprints[fleet.active] === undefined) {
      problems.push({ ring, level: 'warn', message: `this process's ${ring} key ring lacks the fleet's current key ${fleet.active}` });
    } else if (ours.active !== fleet.active && fleet.fingerprints[ours.active] !== undefined) {
      problems.push({ ring, level: 'warn', message: `this process's ${ring} key ${ours.active} is older than the fleet's current key ${fleet.active}` });
    } else {
      await store.putKeyCheck(ring, { ...ours, writtenAt });
    }
  }
  for (const problem of problems) log[problem.level](problem.message, { ring: problem.ring });
  return problems;
}

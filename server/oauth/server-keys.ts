import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { GatewayConfig } from '../config.js';
import type { Logger } from '../log.js';

/** Keys the OAuth server signs with: cookie keys and a JSON Web Key Set. */
export interface ServerKeys {
  cookieKeys: string[];
  jwks: { keys: Record<string, unknown>[] };
}

/**
 * The server keys: cookie keys from `oauth.cookieKeys` (`GATEWAY_COOKIE_KEYS`) and signing keys from
 * the JWKS file `oauth.signingKeysFile` (`GATEWAY_SIGNING_KEYS_FILE`), each a ring whose first key
 * signs and whose every key verifies. What is not configured is read from the data folder,
 * generated there on first run (with a warning), so cookies and signatures survive restarts.
 */
export async function loadServerKeys(config: GatewayConfig, log: Logger): Promise<ServerKeys> {
  const configuredJwks = config.oauth.signingKeysFile ? await readSigningKeys(config.oauth.signingKeysFile) : undefined;
  if (config.oauth.cookieKeys && configuredJwks) return { cookieKeys: config.oauth.cookieKeys, jwks: configuredJwks };
  const file = path.join(config.dataDir, 'server-keys.json');
  let stored: Partial<ServerKeys> = {};
  try {
    stored = JSON.parse(await readFile(file, 'utf8')) as Partial<ServerKeys>;
  } catch {
    // Absent or unreadable: generate below.
  }
  const validCookieKeys = Array.isArray(stored.cookieKeys) && stored.cookieKeys.every((key) => typeof key === 'string' && key.length >= 32);
  const validJwks = Array.isArray(stored.jwks?.keys) && stored.jwks.keys.length > 0;
  if (!validCookieKeys || !validJwks) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    stored = {
      cookieKeys: validCookieKeys ? stored.cookieKeys : [randomBytes(32).toString('base64url')],
      jwks: validJwks ? stored.jwks : { keys: [{ ...privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: randomUUID() }] },
    };
    await mkdir(config.dataDir, { recursive: true });
    await writeFile(file, JSON.stringify(stored), { mode: 0o600 });
    log.warn('generated server keys into the data folder; set GATEWAY_COOKIE_KEYS and GATEWAY_SIGNING_KEYS_FILE in production', { file });
  }
  return { cookieKeys: config.oauth.cookieKeys ?? (stored.cookieKeys as string[]), jwks: configuredJwks ?? (stored.jwks as ServerKeys['jwks']) };
}

/** Reads a JWKS of private signing keys; each needs a `kid`, so tokens name the key that signed them (RFC 7517 §4.5). */
async function readSigningKeys(file: string): Promise<ServerKeys['jwks']> {
  let jwks: { keys?: unknown };
  try {
    jwks = JSON.parse(await readFile(file, 'utf8')) as { keys?: unknown };
  } catch (error) {
    throw new Error(`the signing keys file ${file} is not a readable JWKS: ${(error as Error).message}`);
  }
  const keys = Array.isArray(jwks.keys) ? (jwks.keys as Record<string, unknown>[]) : [];
  if (keys.length === 0 || keys.some((key) => typeof key.kid !== 'string' || typeof key.d !== 'string')) {
    throw new Error(`the signing keys file ${file} must hold {"keys": [...]} of private keys, each with a kid`);
  }
  return { keys };
}

import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';

/** Sealed before key ids existed: `v1.<nonce>.<ciphertext>.<tag>`, opened by trying each key. */
const legacyVersion = 'v1';
/** `v2.<key id>.<nonce>.<ciphertext>.<tag>`. */
const version = 'v2';

/** Raised when a sealed value cannot be opened (wrong key, tampered, or not a sealed value). */
export class SealError extends Error {
  override name = 'SealError';
}

/** One key of a ring: its id travels in every value it seals. */
export interface RingKey {
  /** 1-32 of A-Z a-z 0-9 _ -. */
  id: string;
  /** 32 bytes. */
  key: Buffer;
}

/** Parses a base64 or base64url 32-byte key as configuration gives it. */
export function parseKeyText(text: string): Buffer {
  const trimmed = text.trim();
  return Buffer.from(trimmed, /[-_]/.test(trimmed) ? 'base64url' : 'base64');
}

/** The id a key without one gets: a short hash of it, so every process holding that key agrees. */
export function derivedKeyId(key: Buffer): string {
  return `k${createHash('sha256').update('consent-gateway:key-id').update(key).digest('base64url').slice(0, 10)}`;
}

/**
 * A value that tells whether two processes hold the same key without showing it
 * (HMAC-SHA256 under the key itself, shortened).
 */
export function keyFingerprint(key: Buffer | string): string {
  return createHmac('sha256', key).update('consent-gateway:key-check').digest('base64url').slice(0, 22);
}

/**
 * Seals secrets at rest with AES-256-GCM (DESIGN.md, decision 8) under a key ring: the first key
 * seals, every key opens, and each sealed value names its key, so keys rotate with no downtime.
 * Each value gets a fresh 96-bit nonce; the associated data binds a ciphertext to where it is
 * stored (e.g. `upstream_tokens:alice:github`), so a sealed token copied to another row does not open there.
 */
export class TokenCipher {
  readonly #keys: RingKey[];
  readonly #byId: Map<string, Buffer>;

  /** One key (its id derived from it), or a ring whose first key seals. */
  constructor(keys: Buffer | RingKey[]) {
    const ring = Buffer.isBuffer(keys) ? [{ id: derivedKeyId(keys), key: keys }] : keys;
    if (ring.length === 0) throw new SealError('the key ring is empty');
    for (const { id, key } of ring) {
      if (key.length !== 32) throw new SealError('the encryption key must be 32 bytes (AES-256)');
      if (!/^[A-Za-z0-9_-]{1,32}$/.test(id)) throw new SealError(`key id "${id}" must be 1-32 of A-Z a-z 0-9 _ -`);
    }
    this.#keys = ring;
    this.#byId = new Map(ring.map(({ id, key }) => [id, key]));
    if (this.#byId.size !== ring.length) throw new SealError('two keys of the ring share an id');
  }

  /** Parses a base64 or base64url 32-byte key, as given in configuration. */
  static fromText(text: string): TokenCipher {
    return new TokenCipher(parseKeyText(text));
  }

  /** The id of the key that seals. */
  get activeKeyId(): string {
    return this.#keys[0]!.id;
  }

  /** Each key's id and fingerprint (never the key), for the fleet's key check. */
  fingerprints(): Record<string, string> {
    return Object.fromEntries(this.#keys.map(({ id, key }) => [id, keyFingerprint(key)]));
  }

  /**
   * A 32-byte key for another purpose, derived from the sealing key (HKDF-SHA256, RFC 5869) under
   * `label`. It changes when the sealing key does.
   */
  deriveKey(label: string): Buffer {
    return Buffer.from(hkdfSync('sha256', this.#keys[0]!.key, Buffer.alloc(0), `consent-gateway:${label}`, 32));
  }

  /**
   * {@link deriveKey} for every key of the ring, the sealing key's first: what was made with an
   * older key still verifies during a rotation.
   */
  deriveKeys(label: string): Buffer[] {
    return this.#keys.map(({ key }) => Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), `consent-gateway:${label}`, 32)));
  }

  /** Returns `v2.<key id>.<nonce>.<ciphertext>.<tag>` (base64url parts), sealed with the first key. */
  seal(plaintext: string, associatedData: string): string {
    const { id, key } = this.#keys[0]!;
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, nonce);
    cipher.setAAD(Buffer.from(associatedData));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [version, id, nonce.toString('base64url'), body.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
  }

  /** True when `sealed` is not sealed with the current sealing key (a re-seal job rewrites it). */
  isStale(sealed: string): boolean {
    const [tag, id] = sealed.split('.');
    return tag !== version || id !== this.#keys[0]!.id;
  }

  /** Opens a value sealed by {@link seal} (by any key of the ring, or an id-less `v1` value) with the same associated data. */
  open(sealed: string, associatedData: string): string {
    const parts = sealed.split('.');
    if (parts[0] === version && parts.length === 5) {
      const key = this.#byId.get(parts[1]!);
      if (!key) throw new SealError(`the sealed value names key "${parts[1]}", which this key ring does not hold`);
      return openWith(key, parts.slice(2), associatedData);
    }
    if (parts[0] === legacyVersion && parts.length === 4) {
      for (const { key } of this.#keys) {
        try {
          return openWith(key, parts.slice(1), associatedData);
        } catch {
          // Not this key; a v1 value does not say which one sealed it.
        }
      }
      throw new SealError('the sealed value does not open with this key (wrong key, or tampered)');
    }
    throw new SealError('not a sealed value');
  }
}

function openWith(key: Buffer, [nonce, body, authTag]: string[], associatedData: string): string {
  if (!nonce || body === undefined || !authTag) throw new SealError('not a sealed value');
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(nonce, 'base64url'));
    decipher.setAAD(Buffer.from(associatedData));
    decipher.setAuthTag(Buffer.from(authTag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    throw new SealError('the sealed value does not open with this key (wrong key, or tampered)');
  }
}

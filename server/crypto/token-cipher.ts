import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

const version = 'v1';

/** Raised when a sealed value cannot be opened (wrong key, tampered, or not a sealed value). */
export class SealError extends Error {
  override name = 'SealError';
}

/**
 * Seals secrets at rest with AES-256-GCM (DESIGN.md, decision 8). Each value gets a fresh 96-bit
 * nonce; the associated data binds a ciphertext to where it is stored (e.g. `upstream_tokens:alice:github`),
 * so a sealed token copied to another row does not open there.
 */
export class TokenCipher {
  private readonly key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new SealError('the encryption key must be 32 bytes (AES-256)');
    this.key = key;
  }

  /** Parses a base64 or base64url 32-byte key, as given in configuration. */
  static fromText(text: string): TokenCipher {
    const key = Buffer.from(text.trim(), text.includes('-') || text.includes('_') ? 'base64url' : 'base64');
    return new TokenCipher(key);
  }

  /** A 32-byte key for another purpose, derived from this one (HKDF-SHA256, RFC 5869) under `label`. */
  deriveKey(label: string): Buffer {
    return Buffer.from(hkdfSync('sha256', this.key, Buffer.alloc(0), `consent-gateway:${label}`, 32));
  }

  /** Returns `v1.<nonce>.<ciphertext>.<tag>` (base64url parts). */
  seal(plaintext: string, associatedData: string): string {
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce);
    cipher.setAAD(Buffer.from(associatedData));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [version, nonce.toString('base64url'), body.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
  }

  /** Opens a value sealed by {@link seal} with the same associated data. */
  open(sealed: string, associatedData: string): string {
    const [tag, nonce, body, authTag] = sealed.split('.');
    if (tag !== version || !nonce || body === undefined || !authTag) throw new SealError('not a sealed value');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(nonce, 'base64url'));
      decipher.setAAD(Buffer.from(associatedData));
      decipher.setAuthTag(Buffer.from(authTag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
    } catch {
      throw new SealError('the sealed value does not open with this key (wrong key, or tampered)');
    }
  }
}

import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SealError, TokenCipher } from '../../../server/crypto/token-cipher.js';

describe('TokenCipher', () => {
  const cipher = new TokenCipher(randomBytes(32));

  it('round-trips a value and never shows the plaintext', () => {
    const sealed = cipher.seal('gho_secret-token-value', 'upstream_tokens:alice:github');
    expect(sealed).toMatch(/^v2\.k[A-Za-z0-9_-]{10}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
    expect(sealed).not.toContain('secret');
    expect(cipher.open(sealed, 'upstream_tokens:alice:github')).toBe('gho_secret-token-value');
  });

  it('uses a fresh nonce for every seal', () => {
    expect(cipher.seal('same', 'ad')).not.toBe(cipher.seal('same', 'ad'));
  });

  it('refuses a ciphertext moved to another row (associated data)', () => {
    const sealed = cipher.seal('token', 'upstream_tokens:alice:github');
    expect(() => cipher.open(sealed, 'upstream_tokens:mallory:github')).toThrow(SealError);
  });

  it('refuses a tampered ciphertext and another key', () => {
    const sealed = cipher.seal('token', 'ad');
    const parts = sealed.split('.');
    const body = Buffer.from(parts[3]!, 'base64url');
    body[0] = body[0]! ^ 1;
    parts[3] = body.toString('base64url');
    expect(() => cipher.open(parts.join('.'), 'ad')).toThrow('the sealed value does not open with this key (wrong key, or tampered)');
    expect(() => new TokenCipher(randomBytes(32)).open(sealed, 'ad')).toThrow(SealError);
    expect(() => cipher.open('plain-text', 'ad')).toThrow('not a sealed value');
  });

  it('takes a 32-byte key as base64 or base64url text, and refuses another length', () => {
    const key = randomBytes(32);
    const fromBase64 = TokenCipher.fromText(key.toString('base64'));
    expect(fromBase64.open(new TokenCipher(key).seal('x', 'ad'), 'ad')).toBe('x');
    expect(() => TokenCipher.fromText(randomBytes(16).toString('base64'))).toThrow('the encryption key must be 32 bytes (AES-256)');
  });

  it('seals with the first key of a ring, opens with any, and names the key in each value', () => {
    const [oldKey, newKey] = [randomBytes(32), randomBytes(32)];
    const before = new TokenCipher([{ id: 'old', key: oldKey }]);
    const rotated = new TokenCipher([
      { id: 'new', key: newKey },
      { id: 'old', key: oldKey },
    ]);
    const sealedBefore = before.seal('token', 'ad');
    expect(sealedBefore.split('.').slice(0, 2)).toEqual(['v2', 'old']);
    expect(rotated.open(sealedBefore, 'ad')).toBe('token');
    expect(rotated.isStale(sealedBefore)).toBe(true);
    const sealedAfter = rotated.seal('token', 'ad');
    expect(sealedAfter.split('.').slice(0, 2)).toEqual(['v2', 'new']);
    expect(rotated.isStale(sealedAfter)).toBe(false);
    expect(() => before.open(sealedAfter, 'ad')).toThrow('the sealed value names key "new", which this key ring does not hold');
  });

  it('opens a v1 value (sealed before key ids) with whichever key of the ring sealed it', async () => {
    const { createCipheriv } = await import('node:crypto');
    const key = randomBytes(32);
    const nonce = randomBytes(12);
    const legacy = createCipheriv('aes-256-gcm', key, nonce);
    legacy.setAAD(Buffer.from('ad'));
    const body = Buffer.concat([legacy.update('old-token', 'utf8'), legacy.final()]);
    const v1 = ['v1', nonce.toString('base64url'), body.toString('base64url'), legacy.getAuthTag().toString('base64url')].join('.');
    const ring = new TokenCipher([
      { id: 'new', key: randomBytes(32) },
      { id: 'old', key },
    ]);
    expect(ring.open(v1, 'ad')).toBe('old-token');
    expect(ring.isStale(v1)).toBe(true);
    expect(() => new TokenCipher(randomBytes(32)).open(v1, 'ad')).toThrow(SealError);
  });
});

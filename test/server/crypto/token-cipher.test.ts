import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SealError, TokenCipher } from '../../../server/crypto/token-cipher.js';

describe('TokenCipher', () => {
  const cipher = new TokenCipher(randomBytes(32));

  it('round-trips a value and never shows the plaintext', () => {
    const sealed = cipher.seal('gho_secret-token-value', 'upstream_tokens:alice:github');
    expect(sealed).toMatch(/^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
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
    const body = Buffer.from(parts[2]!, 'base64url');
    body[0] = body[0]! ^ 1;
    parts[2] = body.toString('base64url');
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
});

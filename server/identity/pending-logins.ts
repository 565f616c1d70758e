import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import type { OAuthModelStore } from '../store/store.js';

/** What the gateway keeps between sending the browser to the IdP and the browser's return. */
export interface PendingLogin {
  /** The consent flow (interaction uid) the sign-in is for. */
  flowId: string;
  /** RFC 7636 §4.1 `code_verifier`. */
  codeVerifier: string;
  /** OpenID Connect Core 1.0 §3.1.2.1 `nonce`. */
  nonce: string;
}

const model = 'IdentityLogin';
const defaultTtlSeconds = 10 * 60;

function derive(state: string, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', state, Buffer.alloc(0), `consent-gateway idp login ${purpose}`, 32));
}

/**
 * Sign-ins started at the IdP and not yet finished, in the gateway's store with a short expiry.
 *
 * Server-side rather than in a cookie so that each one is single-use (the callback deletes it
 * before the code exchange) and works across gateway instances sharing the store. Neither the
 * `state` nor a usable secret is stored: a record sits under an HKDF of the state and is sealed
 * (AES-256-GCM) under another HKDF of it, so a copy of the database alone yields no verifier or
 * nonce, and only the browser holding the state can reach its record.
 */
export class PendingLogins {
  constructor(
    private readonly store: OAuthModelStore,
    private readonly ttlSeconds = defaultTtlSeconds,
  ) {}

  /** Remembers a sign-in under its `state` (RFC 6749 §10.12). */
  async save(state: string, login: PendingLogin): Promise<void> {
    const key = derive(state, 'key').toString('base64url');
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', derive(state, 'seal'), iv);
    const sealed = Buffer.concat([cipher.update(JSON.stringify(login), 'utf8'), cipher.final()]);
    const payload = JSON.stringify({ v: 1, iv: iv.toString('base64url'), data: sealed.toString('base64url'), tag: cipher.getAuthTag().toString('base64url') });
    await this.store.upsert(model, key, {
      payload,
      expiresAt: Math.floor(Date.now() / 1000) + this.ttlSeconds,
      grantId: null,
      sessionUid: null,
      userCode: null,
    });
  }

  /** The sign-in started with this `state`, unless it is unknown, expired or already used. */
  async find(state: string): Promise<PendingLogin | undefined> {
    const key = derive(state, 'key').toString('base64url');
    const record = await this.store.find(model, key, Math.floor(Date.now() / 1000));
    if (!record || record.consumedAt !== null) return undefined;
    try {
      const { iv, data, tag } = JSON.parse(record.payload) as { iv: string; data: string; tag: string };
      const decipher = createDecipheriv('aes-256-gcm', derive(state, 'seal'), Buffer.from(iv, 'base64url'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      const plain = Buffer.concat([decipher.update(Buffer.from(data, 'base64url')), decipher.final()]).toString('utf8');
      const login = JSON.parse(plain) as Partial<PendingLogin>;
      if (typeof login.flowId !== 'string' || typeof login.codeVerifier !== 'string' || typeof login.nonce !== 'string') return undefined;
      return { flowId: login.flowId, codeVerifier: login.codeVerifier, nonce: login.nonce };
    } catch {
      return undefined;
    }
  }

  /** Forgets the sign-in started with this `state`, so its callback cannot be replayed. */
  async discard(state: string): Promise<void> {
    await this.store.destroy(model, derive(state, 'key').toString('base64url'));
  }
}

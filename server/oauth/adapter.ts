import { createHash, timingSafeEqual } from 'node:crypto';
import type { OAuthModelStore } from '../store/store.js';

/**
 * Models whose id is itself a bearer secret (a token, a code, a session cookie). They are stored
 * under a SHA-256 of the id, and the id is removed from the stored payload, so a copy of the
 * database yields no usable credential (DESIGN.md, decision 8).
 */
const secretModels = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'ClientCredentials',
  'InitialAccessToken',
  'RegistrationAccessToken',
  'BackchannelAuthenticationRequest',
  'PushedAuthorizationRequest',
  'Session',
  'ReplayDetection',
]);

const now = () => Math.floor(Date.now() / 1000);

/** Marks a stored client secret as its SHA-256, not the secret itself. */
const hashedSecretPrefix = 'sha256:';

function hashClientSecret(secret: string): string {
  return `${hashedSecretPrefix}${createHash('sha256').update(secret).digest('base64url')}`;
}

/**
 * Checks a presented client secret (client_secret_basic, client_secret_post; RFC 6749 §2.3.1)
 * against the stored one: registered clients' secrets are stored as a SHA-256 (RFC 6819
 * §5.1.4.1.3), configured clients' in clear in memory. oidc-provider's documented hook for this is
 * the client model's `compareClientSecret`. A hash rules out `client_secret_jwt` and HS* algorithms,
 * which the gateway does not offer.
 */
export function compareStoredClientSecret(stored: unknown, presented: unknown): boolean {
  if (typeof stored !== 'string' || typeof presented !== 'string') return false;
  const expected = Buffer.from(stored);
  const actual = Buffer.from(stored.startsWith(hashedSecretPrefix) ? hashClientSecret(presented) : presented);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** The adapter interface oidc-provider calls for every model it persists. */
export interface OidcAdapter {
  upsert(id: string, payload: Record<string, unknown>, expiresIn?: number): Promise<void>;
  find(id: string): Promise<Record<string, unknown> | undefined>;
  findByUid(uid: string): Promise<Record<string, unknown> | undefined>;
  findByUserCode(userCode: string): Promise<Record<string, unknown> | undefined>;
  consume(id: string): Promise<void>;
  destroy(id: string): Promise<void>;
  revokeByGrantId(grantId: string): Promise<void>;
}

/** Builds the adapter class oidc-provider instantiates per model name, backed by the gateway's store. */
export function createOidcAdapter(store: OAuthModelStore): new (model: string) => OidcAdapter {
  return class StoreAdapter implements OidcAdapter {
    private readonly secret: boolean;

    constructor(private readonly model: string) {
      this.secret = secretModels.has(model);
    }

    private key(id: string): string {
      return this.secret ? createHash('sha256').update(id).digest('base64url') : id;
    }

    private revive(id: string | undefined, record: { payload: string; consumedAt: number | null } | undefined) {
      if (!record) return undefined;
      const payload = JSON.parse(record.payload) as Record<string, unknown>;
      if (this.secret && id !== undefined) payload.jti = id;
      if (record.consumedAt !== null) payload.consumed = record.consumedAt;
      return payload;
    }

    async upsert(id: string, payload: Record<string, unknown>, expiresIn?: number): Promise<void> {
      const stored = { ...payload };
      if (this.secret) delete stored.jti;
      // A registered client's secret is shown once, in the registration response; only its hash is kept.
      if (this.model === 'Client' && typeof stored.client_secret === 'string' && !stored.client_secret.startsWith(hashedSecretPrefix)) {
        stored.client_secret = hashClientSecret(stored.client_secret);
      }
      await store.upsert(this.model, this.key(id), {
        payload: JSON.stringify(stored),
        expiresAt: typeof expiresIn === 'number' ? now() + expiresIn : null,
        grantId: typeof payload.grantId === 'string' ? payload.grantId : null,
        sessionUid: this.model === 'Session' && typeof payload.uid === 'string' ? payload.uid : null,
        userCode: typeof payload.userCode === 'string' ? payload.userCode : null,
      });
    }

    async find(id: string): Promise<Record<string, unknown> | undefined> {
      return this.revive(id, await store.find(this.model, this.key(id), now()));
    }

    async findByUid(uid: string): Promise<Record<string, unknown> | undefined> {
      const record = await store.findBySessionUid(this.model, uid, now());
      // A session found by uid cannot restore its id (only its hash is stored); oidc-provider only
      // uses this lookup for logout flows, which the gateway does not enable.
      return this.revive(undefined, record);
    }

    async findByUserCode(userCode: string): Promise<Record<string, unknown> | undefined> {
      return this.revive(undefined, await store.findByUserCode(this.model, userCode, now()));
    }

    async consume(id: string): Promise<void> {
      await store.consume(this.model, this.key(id), now());
    }

    async destroy(id: string): Promise<void> {
      await store.destroy(this.model, this.key(id));
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await store.revokeByGrantId(grantId);
    }
  };
}

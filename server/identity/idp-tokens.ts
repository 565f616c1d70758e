import type { TokenCipher } from '../crypto/token-cipher.js';
import type { OAuthModelStore } from '../store/store.js';

/** What the IdP issued at a user's sign-in, kept for exchanges on the user's behalf. */
export interface IdpTokenSet {
  /** The ID token (OpenID Connect Core 1.0 §2). */
  idToken: string;
  /** The IdP's access token, when it issued one. */
  accessToken?: string;
  /** Epoch seconds: the ID token's `exp`. */
  expiresAt: number;
}

const model = 'IdentityTokens';

/** `idp_tokens:<userId>`: the associated data the user's IdP tokens are sealed with. */
function label(userId: string): string {
  return `idp_tokens:${userId}`;
}

/**
 * The IdP tokens of each user's latest sign-in (`oidc` identity mode), sealed (AES-256-GCM under
 * the gateway's token key, bound to the user) in the store until the ID token expires. Upstreams
 * whose authorization server takes the user's identity from the IdP (token exchange, ID-JAG) are
 * reached with them; they never leave the gateway process in clear, and never enter Temporal.
 */
export class IdpTokens {
  constructor(
    private readonly store: OAuthModelStore,
    private readonly cipher: TokenCipher,
  ) {}

  /** Keeps the tokens of a sign-in, replacing the user's earlier ones. */
  async save(userId: string, tokens: IdpTokenSet): Promise<void> {
    const sealed = this.cipher.seal(JSON.stringify(tokens), label(userId));
    await this.store.upsert(model, userId, { payload: JSON.stringify({ sealed }), expiresAt: tokens.expiresAt, grantId: null, sessionUid: null, userCode: null });
  }

  /** The user's tokens, unless they never signed in at the IdP here or the ID token expired. */
  async find(userId: string): Promise<IdpTokenSet | undefined> {
    const now = Math.floor(Date.now() / 1000);
    const record = await this.store.find(model, userId, now);
    if (!record) return undefined;
    try {
      const { sealed } = JSON.parse(record.payload) as { sealed: string };
      const tokens = JSON.parse(this.cipher.open(sealed, label(userId))) as IdpTokenSet;
      return typeof tokens.idToken === 'string' && tokens.expiresAt > now ? tokens : undefined;
    } catch {
      return undefined;
    }
  }
}

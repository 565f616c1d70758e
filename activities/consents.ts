import type { ConsentRecord, ConsentStore } from '../server/store/store.js';

/** Activities over remembered consents (user × client × upstream set). */
export function createConsentActivities({ store }: { store: ConsentStore }) {
  return {
    /** The user's remembered consent for this client, or null. */
    async findConsent(input: { userId: string; clientId: string }): Promise<ConsentRecord | null> {
      return (await store.getConsent(input.userId, input.clientId)) ?? null;
    },
    /** Remembers an approval; replaces an earlier one for the same user and client. */
    async saveConsent(consent: ConsentRecord): Promise<void> {
      await store.saveConsent(consent);
    },
  };
}

import { upstreamTokenLabel } from '../store/sealed-labels.js';
import type { SealedValue, SealedValueStore } from '../store/store.js';
import type { TokenCipher } from './token-cipher.js';

/**
 * The associated data each sealed value was sealed with: where it is stored (see the activities and
 * the upstream callback route, which seal them).
 */
export function sealedValueContext(ref: SealedValue): string {
  const [first = '', second = ''] = ref.key;
  switch (ref.table) {
    case 'upstream_tokens':
      return upstreamTokenLabel(first, second, ref.column === 'access_token' ? 'access' : ref.column === 'dpop_key' ? 'dpop' : 'refresh');
    case 'upstream_clients':
      return `upstream_clients:${first}`;
    case 'upstream_authorizations':
      return ref.column === 'code_verifier' ? `upstream_authorizations:${first}` : `upstream_authorizations:${first}:${ref.column}`;
    case 'exchange_results':
      return first;
  }
}

/** What a re-seal pass did. */
export interface ResealReport {
  /** Values rewritten under the sealing key. */
  resealed: number;
  /** Values already sealed with it. */
  current: number;
  /** Values that changed while the pass ran (written anew, so under the current key already). */
  skipped: number;
  /** Values no key of the ring opens (sealed with a key that was dropped too early). */
  unreadable: number;
}

/**
 * Rewrites every sealed value of the store under the cipher's sealing key, so that older keys can
 * leave the ring. Safe to run while the fleet serves: a value is replaced only if it is still the
 * one that was read, and every process opens both the old and the new form meanwhile.
 */
export async function resealStore(store: SealedValueStore, cipher: TokenCipher): Promise<ResealReport> {
  const report: ResealReport = { resealed: 0, current: 0, skipped: 0, unreadable: 0 };
  for (const ref of await store.listSealedValues()) {
    if (!cipher.isStale(ref.value)) {
      report.current += 1;
      continue;
    }
    const context = sealedValueContext(ref);
    let plaintext: string;
    try {
      plaintext = cipher.open(ref.value, context);
    } catch {
      report.unreadable += 1;
      continue;
    }
    if (await store.replaceSealedValue(ref, cipher.seal(plaintext, context))) report.resealed += 1;
    else report.skipped += 1;
  }
  return report;
}

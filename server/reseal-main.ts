import { loadConfig } from './config.js';
import { loadCipher } from './crypto/keys.js';
import { resealStore } from './crypto/reseal.js';
import { createLogger } from './log.js';
import { openStore } from './store/open-store.js';

/**
 * `npm run reseal`: rewrites every sealed value in the store under the current sealing key (the
 * first of `GATEWAY_ENCRYPTION_KEYS`), the step of a key rotation after which the old key can go.
 * Runs beside a serving fleet; prints one line of counts and exits non-zero when a value opened with no key.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  const store = await openStore(config.store);
  try {
    const cipher = await loadCipher(config, log);
    const report = await resealStore(store, cipher);
    process.stdout.write(`resealed ${report.resealed}, already current ${report.current}, changed meanwhile ${report.skipped}, unreadable ${report.unreadable} (sealing key ${cipher.activeKeyId})\n`);
    if (report.unreadable > 0) process.exitCode = 2;
  } finally {
    await store.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}\n`);
  process.exit(1);
});

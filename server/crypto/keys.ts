import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { GatewayConfig } from '../config.js';
import type { Logger } from '../log.js';
import { parseKeyText, TokenCipher } from './token-cipher.js';

/**
 * The cipher for secrets at rest: the key ring from configuration (`GATEWAY_ENCRYPTION_KEYS`, or
 * the single `GATEWAY_ENCRYPTION_KEY`), or, in the embedded default, a key generated once into the
 * data folder (with a warning).
 */
export async function loadCipher(config: GatewayConfig, log: Logger): Promise<TokenCipher> {
  if (config.encryptionKeys) return new TokenCipher(config.encryptionKeys.map(({ id, key }) => ({ id, key: parseKeyText(key) })));
  if (config.encryptionKey) return TokenCipher.fromText(config.encryptionKey);
  const file = path.join(config.dataDir, 'encryption.key');
  const existing = await readFile(file, 'utf8').catch(() => undefined);
  if (existing) return TokenCipher.fromText(existing);
  const key = randomBytes(32).toString('base64url');
  await mkdir(config.dataDir, { recursive: true });
  await writeFile(file, key, { mode: 0o600, flag: 'wx' }).catch(async (error: NodeJS.ErrnoException) => {
    // Another process (a worker beside the web server) generated it first: use theirs.
    if (error.code !== 'EEXIST') throw error;
  });
  log.warn('generated an encryption key for upstream tokens into the data folder; set GATEWAY_ENCRYPTION_KEY in production', { file });
  return TokenCipher.fromText(await readFile(file, 'utf8'));
}

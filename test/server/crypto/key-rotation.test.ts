import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkFleetKeys } from '../../../server/crypto/key-check.js';
import { resealStore } from '../../../server/crypto/reseal.js';
import { TokenCipher } from '../../../server/crypto/token-cipher.js';
import { createLogger } from '../../../server/log.js';
import type { ServerKeys } from '../../../server/oauth/server-keys.js';
import { SqliteStore } from '../../../server/store/sqlite-store.js';

const serverKeys = (): ServerKeys => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { cookieKeys: [randomBytes(32).toString('base64url')], jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'sig-1' }] } };
};

describe('key rotation', () => {
  let dir: string;
  let store: SqliteStore;
  const lines: string[] = [];
  const log = createLogger('debug', (line) => lines.push(line));

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-keys-'));
    store = await SqliteStore.open(path.join(dir, 'gateway.sqlite'));
    lines.length = 0;
  });

  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('says at start when a key id holds another key than the fleet’s, and never logs a key', async () => {
    const keys = serverKeys();
    const oldKey = randomBytes(32);
    expect(await checkFleetKeys(store, { cipher: new TokenCipher([{ id: 'k1', key: oldKey }]), keys }, log)).toEqual([]);
    const other = randomBytes(32);
    const problems = await checkFleetKeys(store, { cipher: new TokenCipher([{ id: 'k1', key: other }]), keys }, log);
    expect(problems).toEqual([{ ring: 'encryption', level: 'error', message: "this process's encryption keys differ from the fleet's: key id k1 holds another key here" }]);
    expect(lines.join('\n')).not.toContain(other.toString('base64'));
    expect(lines.join('\n')).not.toContain(other.toString('base64url'));
  });

  it('takes a newer sealing key that holds the fleet’s as the fleet’s, and warns a process still sealing with the old one', async () => {
    const keys = serverKeys();
    const [oldKey, newKey] = [randomBytes(32), randomBytes(32)];
    await checkFleetKeys(store, { cipher: new TokenCipher([{ id: 'old', key: oldKey }]), keys }, log);
    const rotated = new TokenCipher([
      { id: 'new', key: newKey },
      { id: 'old', key: oldKey },
    ]);
    expect(await checkFleetKeys(store, { cipher: rotated, keys }, log)).toEqual([]);
    expect((await store.getKeyCheck('encryption'))?.active).toBe('new');
    const lagging = new TokenCipher([
      { id: 'old', key: oldKey },
      { id: 'new', key: newKey },
    ]);
    expect(await checkFleetKeys(store, { cipher: lagging, keys }, log)).toEqual([{ ring: 'encryption', level: 'warn', message: "this process's encryption key old is older than the fleet's current key new" }]);
  });

  it('re-seals every stored secret under the new key, and the old key can then go', async () => {
    const [oldKey, newKey] = [randomBytes(32), randomBytes(32)];
    const before = new TokenCipher([{ id: 'old', key: oldKey }]);
    await store.saveUpstreamTokens({
      userId: 'alice',
      upstream: 'github',
      accessToken: before.seal('gho_access', 'upstream_tokens:alice:github:access'),
      refreshToken: before.seal('ghr_refresh', 'upstream_tokens:alice:github:refresh'),
      tokenType: 'DPoP',
      dpopKey: before.seal('{"alg":"ES256","jwk":{}}', 'upstream_tokens:alice:github:dpop'),
      scopes: [],
      expiresAt: null,
      status: 'connected',
      version: 1,
      connectedAt: 't0',
      lastUsedAt: null,
      updatedAt: 't0',
    });
    await store.putExchangeResult('exchange:1', before.seal('{"access_token":"x"}', 'exchange:1'), 't0');
    const rotated = new TokenCipher([
      { id: 'new', key: newKey },
      { id: 'old', key: oldKey },
    ]);
    expect(await resealStore(store, rotated)).toEqual({ resealed: 4, current: 0, skipped: 0, unreadable: 0 });
    expect(await resealStore(store, rotated)).toEqual({ resealed: 0, current: 4, skipped: 0, unreadable: 0 });
    const after = new TokenCipher([{ id: 'new', key: newKey }]);
    const tokens = await store.getUpstreamTokens('alice', 'github');
    expect(after.open(tokens!.accessToken, 'upstream_tokens:alice:github:access')).toBe('gho_access');
    expect(after.open(tokens!.refreshToken!, 'upstream_tokens:alice:github:refresh')).toBe('ghr_refresh');
    expect(after.open(tokens!.dpopKey!, 'upstream_tokens:alice:github:dpop')).toBe('{"alg":"ES256","jwk":{}}');
    expect(after.open((await store.getExchangeResult('exchange:1'))!, 'exchange:1')).toBe('{"access_token":"x"}');
  });
});

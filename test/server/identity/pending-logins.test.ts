import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PendingLogins } from '../../../server/identity/pending-logins.js';
import { SqliteStore } from '../../../server/store/sqlite-store.js';

let dir: string;
let store: SqliteStore;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cg-pending-'));
  store = await SqliteStore.open(path.join(dir, 'gateway.sqlite'));
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const login = { flowId: 'flow-0123456789', codeVerifier: 'verifier-6d1f0c2b9a7e4c3f8b5a1d2e3f4a5b6c7d8e9f0a1b2c', nonce: 'nonce-0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d' };
const state = 'state-4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3';

describe('PendingLogins', () => {
  it('finds a sign-in by its state', async () => {
    const pending = new PendingLogins(store.oauth);
    await pending.save(state, login);
    expect(await pending.find(state)).toEqual(login);
  });

  it('finds nothing for another state', async () => {
    const pending = new PendingLogins(store.oauth);
    await pending.save(state, login);
    expect(await pending.find(`${state}x`)).toBeUndefined();
  });

  it('finds nothing once discarded', async () => {
    const pending = new PendingLogins(store.oauth);
    await pending.save(state, login);
    await pending.discard(state);
    expect(await pending.find(state)).toBeUndefined();
  });

  it('finds nothing once expired', async () => {
    const pending = new PendingLogins(store.oauth, 0);
    await pending.save(state, login);
    expect(await pending.find(state)).toBeUndefined();
  });

  it('stores neither the state, the verifier nor the nonce in the database', async () => {
    const pending = new PendingLogins(store.oauth);
    await pending.save(state, login);
    await store.close();
    store = await SqliteStore.open(path.join(dir, 'gateway.sqlite'));
    const stored = new PendingLogins(store.oauth);
    expect(await stored.find(state)).toEqual(login);
    const files = await readdir(dir);
    const bytes = Buffer.concat(await Promise.all(files.map((file) => readFile(path.join(dir, file)))));
    expect(bytes.includes(Buffer.from('IdentityLogin'))).toBe(true);
    for (const secret of [state, login.codeVerifier, login.nonce, login.flowId]) expect(bytes.includes(Buffer.from(secret))).toBe(false);
  });
});

import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createOidcAdapter } from '../../../server/oauth/adapter.js';
import { SqliteStore } from '../../../server/store/sqlite-store.js';

let dir: string;
let store: SqliteStore;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cg-adapter-'));
  store = await SqliteStore.open(path.join(dir, 'gateway.sqlite'));
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function fileText(): Promise<string> {
  const base = path.join(dir, 'gateway.sqlite');
  const parts = await Promise.all([base, `${base}-wal`].map((file) => readFile(file).catch(() => Buffer.alloc(0))));
  return Buffer.concat(parts).toString('latin1');
}

describe('oidc-provider adapter over the store', () => {
  it('round-trips a token and keeps neither its id nor its jti on disk', async () => {
    const Adapter = createOidcAdapter(store.oauth);
    const tokens = new Adapter('AccessToken');
    const id = 'AT-secret-value-4f9b2c0e1d';
    await tokens.upsert(id, { jti: id, kind: 'AccessToken', accountId: 'alice', grantId: 'g1', aud: 'http://localhost/mcp' }, 3600);
    expect(await tokens.find(id)).toEqual({ jti: id, kind: 'AccessToken', accountId: 'alice', grantId: 'g1', aud: 'http://localhost/mcp' });
    expect(await tokens.find('AT-other')).toBeUndefined();
    expect(await fileText()).not.toContain(id);
    expect(await fileText()).toContain('alice');
  });

  it('keeps public ids (clients, grants) as they are', async () => {
    const Adapter = createOidcAdapter(store.oauth);
    await new Adapter('Client').upsert('client-123', { client_id: 'client-123', redirect_uris: ['http://localhost/cb'] });
    expect(await new Adapter('Client').find('client-123')).toEqual({ client_id: 'client-123', redirect_uris: ['http://localhost/cb'] });
    expect(await new Adapter('Grant').find('client-123')).toBeUndefined();
  });

  it('marks a code consumed', async () => {
    const codes = new (createOidcAdapter(store.oauth))('AuthorizationCode');
    await codes.upsert('code-1', { jti: 'code-1', grantId: 'g1' }, 60);
    await codes.consume('code-1');
    const found = await codes.find('code-1');
    expect(typeof found?.consumed).toBe('number');
  });

  it('revokes every token of a grant and nothing else', async () => {
    const Adapter = createOidcAdapter(store.oauth);
    await new Adapter('AccessToken').upsert('at-1', { grantId: 'g1' }, 60);
    await new Adapter('RefreshToken').upsert('rt-1', { grantId: 'g1' }, 60);
    await new Adapter('AccessToken').upsert('at-2', { grantId: 'g2' }, 60);
    await new Adapter('RefreshToken').revokeByGrantId('g1');
    expect(await new Adapter('AccessToken').find('at-1')).toBeUndefined();
    expect(await new Adapter('RefreshToken').find('rt-1')).toBeUndefined();
    expect(await new Adapter('AccessToken').find('at-2')).toEqual({ jti: 'at-2', grantId: 'g2' });
  });

  it('does not return an expired record, and purges it', async () => {
    const sessions = new (createOidcAdapter(store.oauth))('Session');
    await sessions.upsert('s-1', { uid: 'u-1', accountId: 'alice' }, -1);
    expect(await sessions.find('s-1')).toBeUndefined();
    expect(await store.oauth.purgeExpired(Math.floor(Date.now() / 1000))).toBe(1);
  });

  it('destroys a record', async () => {
    const interactions = new (createOidcAdapter(store.oauth))('Interaction');
    await interactions.upsert('i-1', { uid: 'i-1' }, 600);
    await interactions.destroy('i-1');
    expect(await interactions.find('i-1')).toBeUndefined();
  });
});

import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { copyFile, mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterEach, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { createApp } from '../../server/app.js';
import { migrations } from '../../server/store/migrations.js';
import { loadConfig } from '../../server/config.js';
import { createLogger } from '../../server/log.js';
import { SqliteStore } from '../../server/store/sqlite-store.js';
import { temporalHealthCheck } from '../../server/temporal/client.js';
import { freePort } from '../helpers/free-port.js';
import { temporalUnavailable } from '../helpers/temporal.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function serve(address: string) {
  const dir = await mkdtemp(path.join(tmpdir(), 'cg-health-'));
  const store = await SqliteStore.open(path.join(dir, 'gateway.sqlite'));
  const connection = await Connection.lazy({ address, connectTimeout: 1_000 });
  const client = new Client({ connection, namespace: 'default' });
  const logged: string[] = [];
  const app = createApp(loadConfig({ env: {} }), {
    log: createLogger('debug', (line) => logged.push(line)),
    store,
    temporalHealth: temporalHealthCheck(client, 'default', address),
  });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  cleanups.push(async () => {
    await new Promise((resolve) => server.close(resolve));
    await connection.close();
    await store.close().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, store, logged };
}

describe.skipIf(temporalUnavailable)('GET /healthz', () => {
  it('answers 200 when Temporal and the store are fine', async () => {
    const { url } = await serve(inject('temporalAddress'));
    const response = await fetch(`${url}/healthz`);
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(await response.json()).toEqual({
      status: 'ok',
      temporal: { ok: true, namespace: 'default' },
      store: { ok: true, schemaVersion: migrations.length },
    });
  });

  it('answers 503 naming Temporal when it does not answer', async () => {
    const { url } = await serve(`127.0.0.1:${await freePort()}`);
    const response = await fetch(`${url}/healthz`);
    expect(response.status).toBe(503);
    const body = (await response.json()) as { status: string; temporal: { ok: boolean; error: string }; store: unknown };
    expect(body.status).toBe('unavailable');
    expect(body.temporal.ok).toBe(false);
    expect(body.temporal.error).toMatch(/^Temporal at 127\.0\.0\.1:\d+ did not answer: /);
    expect(body.store).toEqual({ ok: true, schemaVersion: migrations.length });
  });

  it('answers 503 naming the store when it is closed', async () => {
    const { url, store } = await serve(inject('temporalAddress'));
    await store.close();
    const response = await fetch(`${url}/healthz`);
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ status: 'unavailable', temporal: { ok: true }, store: { ok: false, error: 'store is closed' } });
  });

  it('answers 503 naming the store when its database file and WAL were deleted', async () => {
    const { url, store } = await serve(inject('temporalAddress'));
    for (const suffix of ['', '-wal', '-shm']) await rm(`${store.file}${suffix}`, { force: true });
    const response = await fetch(`${url}/healthz`);
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({
      status: 'unavailable',
      temporal: { ok: true },
      store: { ok: false, error: 'the database file was deleted while the store holds it open' },
    });
  });

  it('answers 503 naming the store when another file took its database file\'s path', async () => {
    const { url, store } = await serve(inject('temporalAddress'));
    await rename(store.file, `${store.file}.old`);
    await copyFile(`${store.file}.old`, store.file);
    const response = await fetch(`${url}/healthz`);
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({
      status: 'unavailable',
      temporal: { ok: true },
      store: { ok: false, error: 'the database file was replaced by another file while the store holds it open' },
    });
  });
});

describe('errors', () => {
  it('answers an unknown path with a JSON 404, never a 500', async () => {
    const { url } = await serve('127.0.0.1:1');
    const response = await fetch(`${url}/no/such/thing?x=1`);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: 'not_found', error_description: 'no such endpoint: GET /no/such/thing' });
    expect(response.headers.get('content-security-policy')).toBe("frame-ancestors 'none'");
  });

  it('answers a wrong method with 405 and Allow', async () => {
    const { url } = await serve('127.0.0.1:1');
    const response = await fetch(`${url}/healthz`, { method: 'POST', body: 'x' });
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toContain('GET');
  });
});

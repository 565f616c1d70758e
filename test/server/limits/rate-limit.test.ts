import { describe, expect, it } from 'vitest';
import { clientAddress } from '../../../server/config/trusted-proxies.js';
import { addressKey, memoryRateLimits, rateLimiter } from '../../../server/limits/rate-limit.js';

const t0 = 1_800_000_000_000;
const minute = { name: 'test', limit: 3, windowMs: 60_000 };

describe('rateLimiter on memory', () => {
  it('allows `limit` hits a window and names when the oldest stops counting', async () => {
    const take = rateLimiter(memoryRateLimits(100), minute);
    expect(await take('a', t0)).toEqual({ allowed: true, retryAfterSeconds: 0 });
    expect(await take('a', t0 + 10_000)).toEqual({ allowed: true, retryAfterSeconds: 0 });
    expect(await take('a', t0 + 20_000)).toEqual({ allowed: true, retryAfterSeconds: 0 });
    expect(await take('a', t0 + 30_000)).toEqual({ allowed: false, retryAfterSeconds: 30 });
    expect(await take('b', t0 + 30_000)).toEqual({ allowed: true, retryAfterSeconds: 0 });
    // Sliding: at t0 + 60 s only the first hit has left the window.
    expect(await take('a', t0 + 60_000)).toEqual({ allowed: true, retryAfterSeconds: 0 });
    expect(await take('a', t0 + 60_500)).toEqual({ allowed: false, retryAfterSeconds: 10 });
  });

  it('keeps rules apart on one backend', async () => {
    const backend = memoryRateLimits(100);
    const one = rateLimiter(backend, { ...minute, name: 'one', limit: 1 });
    const two = rateLimiter(backend, { ...minute, name: 'two', limit: 1 });
    expect((await one('k', t0)).allowed).toBe(true);
    expect((await two('k', t0)).allowed).toBe(true);
    expect((await one('k', t0)).allowed).toBe(false);
  });

  it('keeps a refused address refused through 10,001 fresh keys', async () => {
    const take = rateLimiter(memoryRateLimits(10_000), minute);
    for (let i = 0; i < 3; i += 1) expect((await take('198.51.100.7', t0)).allowed).toBe(true);
    expect((await take('198.51.100.7', t0)).allowed).toBe(false);
    let admitted = 0;
    for (let i = 0; i <= 10_000; i += 1) if ((await take(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, t0 + 1_000)).allowed) admitted += 1;
    expect((await take('198.51.100.7', t0 + 2_000)).allowed).toBe(false);
    // The table held 10,000 keys: the one that did not fit shares the overflow entry.
    expect(admitted).toBe(10_001);
  });

  it('shares one overflow entry among new keys while the table is full of live entries', async () => {
    const take = rateLimiter(memoryRateLimits(10), minute);
    for (let i = 0; i < 10; i += 1) expect((await take(`key-${i}`, t0)).allowed).toBe(true);
    const newcomers = await Promise.all(Array.from({ length: 8 }, (_, i) => take(`new-${i}`, t0 + 1_000)));
    expect(newcomers.map((verdict) => verdict.allowed)).toEqual([true, true, true, false, false, false, false, false]);
    expect(newcomers[7]).toEqual({ allowed: false, retryAfterSeconds: 60 });
  });

  it('evicts expired entries one by one, oldest first, to make room', async () => {
    const take = rateLimiter(memoryRateLimits(3), { ...minute, limit: 1 });
    expect((await take('old', t0)).allowed).toBe(true);
    expect((await take('middle', t0 + 30_000)).allowed).toBe(true);
    expect((await take('young', t0 + 50_000)).allowed).toBe(true);
    // At t0 + 70 s only `old` has expired: one newcomer takes its place, the next overflows.
    expect((await take('first', t0 + 70_000)).allowed).toBe(true);
    expect((await take('second', t0 + 70_000)).allowed).toBe(true);
    expect((await take('third', t0 + 70_000)).allowed).toBe(false);
    expect((await take('middle', t0 + 70_000)).allowed).toBe(false);
    expect((await take('young', t0 + 70_000)).allowed).toBe(false);
  });
});

describe('addressKey', () => {
  it('keys IPv4 by address and IPv6 by its /64', () => {
    expect(addressKey('203.0.113.9')).toBe('203.0.113.9');
    expect(addressKey('::ffff:203.0.113.9')).toBe('203.0.113.9');
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:0db8:0001:0002:ffff:1:2:3')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::7')).toBe('2001:db8:0:0::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
  });
});

describe('clientAddress', () => {
  it('takes the X-Forwarded-For entry `hops` from the right, never one the client wrote', () => {
    expect(clientAddress('10.0.0.2', '6.6.6.6, 203.0.113.9', 1)).toBe('203.0.113.9');
    expect(clientAddress('10.0.0.2', ['6.6.6.6', '203.0.113.9, 10.0.0.1'], 2)).toBe('203.0.113.9');
    expect(clientAddress('10.0.0.2', '203.0.113.9', 1)).toBe('203.0.113.9');
  });

  it('uses the TCP peer without hops, without the header, or with fewer entries than hops', () => {
    expect(clientAddress('::ffff:10.0.0.2', '6.6.6.6', 0)).toBe('10.0.0.2');
    expect(clientAddress('10.0.0.2', undefined, 1)).toBe('10.0.0.2');
    expect(clientAddress('10.0.0.2', '203.0.113.9', 2)).toBe('10.0.0.2');
    expect(clientAddress(undefined, undefined, 0)).toBe('');
  });
});

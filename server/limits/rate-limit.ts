import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { StoreConfig } from '../config.js';
import type { RateLimitStore } from '../store/store.js';

/** The answer to one hit: taken, or refused until a slot frees in `retryAfterMs`. */
export interface HitResult {
  taken: boolean;
  retryAfterMs: number;
}

/**
 * Where sliding-window hits are counted. A hit taken at `now` counts until `now + windowMs`; a key
 * holds at most `limit` live hits, so a refused hit is not recorded.
 */
export interface RateLimitBackend {
  takeHit(key: string, now: number, windowMs: number, limit: number): Promise<HitResult>;
}

/** One limit: `limit` hits per key in any `windowMs`. `name` keeps its keys apart from other limits'. */
export interface RateLimitRule {
  name: string;
  limit: number;
  windowMs: number;
}

/** A refusal says when to come back: `Retry-After` (RFC 9110 §10.2.3), in whole seconds, at least 1. */
export interface RateLimitVerdict {
  allowed: boolean;
  retryAfterSeconds: number;
}

/** Takes a hit for `key` under one rule. */
export type RateLimiter = (key: string, now?: number) => Promise<RateLimitVerdict>;

/** The key every limit uses once a memory table is full and its oldest entries are all still live. */
const overflowKey = 'overflow';

/**
 * Sliding-window log in process memory, bounded: at most `maxKeys` keys per window length. A new key
 * first evicts, one by one and oldest first, the entries whose hits have all expired; when the
 * oldest is still live the newcomer shares one overflow entry, so a flood of fresh keys slows down
 * together instead of pushing a refused key out of the table.
 */
export function memoryRateLimits(maxKeys: number): RateLimitBackend {
  // One table per window length: within one, the least recently touched entry expires first.
  const tables = new Map<number, Map<string, number[]>>();
  return {
    async takeHit(key, now, windowMs, limit) {
      let table = tables.get(windowMs);
      if (!table) {
        table = new Map();
        tables.set(windowMs, table);
      }
      let slot = key;
      let expiries = table.get(slot);
      if (!expiries) {
        for (const [oldest, hits] of table) {
          if ((hits[hits.length - 1] ?? 0) > now) break;
          table.delete(oldest);
        }
        if (table.size >= maxKeys) {
          slot = overflowKey;
          expiries = table.get(slot);
        }
      }
      // Delete and set again: a Map iterates in insertion order, so this keeps it least recent first.
      table.delete(slot);
      const live = (expiries ?? []).filter((expiry) => expiry > now);
      let result: HitResult;
      if (live.length >= limit) {
        result = { taken: false, retryAfterMs: (live[0] ?? now) - now };
      } else {
        live.push(now + windowMs);
        result = { taken: true, retryAfterMs: 0 };
      }
      table.set(slot, live);
      return result;
    },
  };
}

/** The store's hit log ({@link RateLimitStore}), which every process of a fleet shares. */
export function storeRateLimits(store: RateLimitStore): RateLimitBackend {
  return { takeHit: (key, now, windowMs, limit) => store.takeHit(key, now, windowMs, limit) };
}

/**
 * The backend of every gateway limit: the store when it is PostgreSQL (a fleet shares it), process
 * memory with the embedded SQLite store (one gateway process serves HTTP).
 */
export function rateLimitBackend(storeConfig: StoreConfig, store: RateLimitStore, maxKeys: number): RateLimitBackend {
  return storeConfig.backend === 'postgres' ? storeRateLimits(store) : memoryRateLimits(maxKeys);
}

const digest = (value: string) => createHash('sha256').update(value).digest('base64url');

/**
 * A limiter for one rule. Keys are hashed before they reach the backend, so client addresses and
 * client ids are not kept as they are.
 */
export function rateLimiter(backend: RateLimitBackend, rule: RateLimitRule): RateLimiter {
  return async (key, now = Date.now()) => {
    const result = await backend.takeHit(`${rule.name}:${digest(key)}`, now, rule.windowMs, rule.limit);
    return { allowed: result.taken, retryAfterSeconds: result.taken ? 0 : Math.max(1, Math.ceil(result.retryAfterMs / 1000)) };
  };
}

/**
 * The key of a client address: IPv4 as it is, IPv6 by its /64 (RFC 4291 §2.5.4), the block one
 * host usually holds whole, so rotating through it does not give fresh keys.
 */
export function addressKey(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped?.[1]) return mapped[1];
  if (isIP(address) !== 6) return address;
  const [head = '', tail = ''] = (address.split('%')[0] ?? '').split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups
    .slice(0, 4)
    .map((group) => group.replace(/^0+(?=.)/, '').toLowerCase())
    .join(':')}::/64`;
}

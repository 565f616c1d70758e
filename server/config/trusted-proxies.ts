import { BlockList, isIP } from 'node:net';

/**
 * Strips the IPv4-mapped IPv6 prefix (RFC 4291 §2.5.5.2), so a peer seen as `::ffff:10.0.0.1` on a
 * dual-stack socket matches a proxy configured as `10.0.0.1`.
 */
export function normalizeAddress(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address.trim());
  return mapped?.[1] ?? address.trim();
}

/** Whether a TCP peer address is one of the configured reverse proxies. */
export type TrustedProxies = (peerAddress: string | undefined) => boolean;

/**
 * Builds a {@link TrustedProxies} matcher from exact addresses (`10.0.0.1`, `::1`) and CIDR blocks
 * (`10.0.0.0/8`, `fd00::/8`; RFC 4632 §3.1, RFC 4291 §2.3). Throws a `TypeError` naming the first
 * entry that is neither.
 */
export function trustedProxies(entries: readonly string[]): TrustedProxies {
  const list = new BlockList();
  for (const entry of entries) {
    const parts = entry.trim().split('/');
    const address = normalizeAddress(parts[0] ?? '');
    const family = isIP(address);
    if (family === 0 || parts.length > 2) throw new TypeError(`"${entry}" is not an IP address or CIDR block`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    const prefix = parts[1];
    if (prefix === undefined) {
      list.addAddress(address, type);
      continue;
    }
    const bits = /^\d{1,3}$/.test(prefix) ? Number(prefix) : Number.NaN;
    if (!(bits >= 0 && bits <= (family === 4 ? 32 : 128))) throw new TypeError(`"${entry}" has an invalid prefix length`);
    list.addSubnet(address, bits, type);
  }
  return (peerAddress) => {
    if (!peerAddress) return false;
    const peer = normalizeAddress(peerAddress);
    const family = isIP(peer);
    if (family === 0) return false;
    try {
      return list.check(peer, family === 4 ? 'ipv4' : 'ipv6');
    } catch {
      // A scoped IPv6 peer (fe80::1%eth0) is not something a proxy list names.
      return false;
    }
  };
}

/**
 * The client's address behind `hops` reverse proxies that each append the address they saw to
 * `X-Forwarded-For`: the entry `hops` from the right. Entries further left were written by the
 * client itself and prove nothing. With no hops, or fewer entries than hops, the TCP peer.
 */
export function clientAddress(peerAddress: string | undefined, forwardedFor: string | string[] | undefined, hops: number): string {
  const peer = normalizeAddress(peerAddress ?? '');
  if (hops <= 0 || forwardedFor === undefined) return peer;
  const entries = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor)
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  const chosen = entries[entries.length - hops];
  return chosen === undefined ? peer : normalizeAddress(chosen);
}

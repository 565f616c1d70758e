import { describe, expect, it } from 'vitest';
import { normalizeAddress, trustedProxies } from '../../../server/config/trusted-proxies.js';

describe('trustedProxies', () => {
  it('matches exact IPv4 and IPv6 addresses and nothing else', () => {
    const trusted = trustedProxies(['10.0.0.5', '::1']);
    expect(trusted('10.0.0.5')).toBe(true);
    expect(trusted('::1')).toBe(true);
    expect(trusted('10.0.0.6')).toBe(false);
    expect(trusted('127.0.0.1')).toBe(false);
    expect(trusted('::2')).toBe(false);
  });

  it('treats an IPv4-mapped IPv6 peer as its IPv4 address', () => {
    expect(trustedProxies(['127.0.0.1'])('::ffff:127.0.0.1')).toBe(true);
    expect(trustedProxies(['::ffff:10.1.2.3'])('10.1.2.3')).toBe(true);
    expect(trustedProxies(['127.0.0.1'])('::ffff:127.0.0.2')).toBe(false);
    expect(normalizeAddress('::FFFF:192.0.2.1')).toBe('192.0.2.1');
    expect(normalizeAddress('2001:db8::1')).toBe('2001:db8::1');
  });

  it('matches CIDR blocks for both families', () => {
    const trusted = trustedProxies(['10.0.0.0/8', 'fd00::/8', '192.0.2.128/25']);
    expect(trusted('10.255.1.2')).toBe(true);
    expect(trusted('::ffff:10.0.0.1')).toBe(true);
    expect(trusted('11.0.0.1')).toBe(false);
    expect(trusted('fd12:3456::1')).toBe(true);
    expect(trusted('fe80::1')).toBe(false);
    expect(trusted('192.0.2.200')).toBe(true);
    expect(trusted('192.0.2.100')).toBe(false);
  });

  it('refuses no peer, an empty peer and a peer that is not an address', () => {
    const trusted = trustedProxies(['0.0.0.0/0', '::/0']);
    expect(trusted(undefined)).toBe(false);
    expect(trusted('')).toBe(false);
    expect(trusted('localhost')).toBe(false);
    expect(trusted('127.0.0.1')).toBe(true);
  });

  it('rejects entries that are neither an address nor a CIDR block, naming them', () => {
    expect(() => trustedProxies(['proxy.internal'])).toThrow('"proxy.internal" is not an IP address or CIDR block');
    expect(() => trustedProxies(['10.0.0.0/33'])).toThrow('"10.0.0.0/33" has an invalid prefix length');
    expect(() => trustedProxies(['fd00::/129'])).toThrow('"fd00::/129" has an invalid prefix length');
    expect(() => trustedProxies(['10.0.0.0/8/1'])).toThrow('"10.0.0.0/8/1" is not an IP address or CIDR block');
    expect(() => trustedProxies(['10.0.0.0/x'])).toThrow('"10.0.0.0/x" has an invalid prefix length');
  });
});

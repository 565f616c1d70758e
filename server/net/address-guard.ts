import { lookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP } from 'node:net';

/**
 * Address blocks an outbound request to a URL that came from outside must never reach: this host,
 * private networks, link-local (cloud metadata at 169.254.169.254), CGNAT (100.100.100.200),
 * ULA (fd00:ec2::254), multicast, documentation and other special-use ranges (RFC 6890 and the
 * IANA special-purpose registries), and IPv6 forms that embed an IPv4 address.
 */
const nonPublicV4 = new BlockList();
// A list of its own: a BlockList also matches IPv4 addresses against IPv4-mapped IPv6 rules.
const nonPublicV6 = new BlockList();
for (const [network, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  nonPublicV4.addSubnet(network, bits, 'ipv4');
}
for (const [network, bits] of [
  ['::', 127],
  ['::ffff:0:0', 96],
  ['64:ff9b::', 96],
  ['64:ff9b:1::', 48],
  ['100::', 64],
  ['2001::', 23],
  ['2001:db8::', 32],
  ['2002::', 16],
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10],
  ['ff00::', 8],
] as const) {
  nonPublicV6.addSubnet(network, bits, 'ipv6');
}

/** Whether an IP address is a public unicast address, one a URL from outside may lead to. */
export function isPublicAddress(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, '');
  const family = isIP(bare);
  // A zone index (fe80::1%eth0) names an interface of this host.
  if (family === 0 || bare.includes('%')) return false;
  return family === 4 ? !nonPublicV4.check(bare, 'ipv4') : !nonPublicV6.check(bare, 'ipv6');
}

/** Error code of a request refused before any connection was opened. */
export const addressRefused = 'address_refused';

/** A request the guard refused: the URL's host is, or resolves to, an address it may not reach. */
export class AddressRefusedError extends Error {
  readonly code = addressRefused;
}

/** A `fetch` for the requests the guard makes; it never follows redirects. */
export type GuardedFetch = (input: string | URL, init?: RequestInit) => Promise<Response>;

/** How {@link guardedFetch} decides and connects. */
export interface AddressGuardOptions {
  /** Refuse a URL whose host is an IP literal, even a public one. */
  refuseIpLiterals?: boolean;
  /** Whole-request limit; default 5 s. */
  timeoutMs?: number;
  /** Largest response body read; default 1 MiB. */
  maxBodyBytes?: number;
  /**
   * Test-only: connect to these host names at the given (loopback) address, trusting the given CA,
   * without the address check. Nothing else bypasses it.
   */
  dangerouslyResolveHosts?: Record<string, { address: string; ca?: string }>;
  /** Test-only: addresses to take as public (a loopback listener standing in for a remote host). */
  dangerouslyTreatAsPublic?: readonly string[];
}

interface Target {
  address: string;
  family: 4 | 6;
  ca?: string;
}

/**
 * Resolves `host` once and checks every address it resolves to; the request then connects to
 * that address only (no second lookup a DNS rebinding could answer differently).
 */
async function resolveTarget(host: string, options: AddressGuardOptions, allowed: (address: string) => boolean): Promise<Target> {
  const mapped = options.dangerouslyResolveHosts?.[host];
  if (mapped) return { address: mapped.address, family: isIP(mapped.address) === 6 ? 6 : 4, ...(mapped.ca ? { ca: mapped.ca } : {}) };
  if (isIP(host)) {
    if (options.refuseIpLiterals) throw new AddressRefusedError(`${host} is an IP address; a host name is required`);
    if (!allowed(host)) throw new AddressRefusedError(`${host} is not a public address`);
    return { address: host, family: isIP(host) === 6 ? 6 : 4 };
  }
  let addresses: { address: string; family: number }[];
  try {
    addresses = await lookup(host, { all: true, verbatim: true });
  } catch (error) {
    throw new Error(`${host} does not resolve: ${(error as Error).message}`);
  }
  const refused = addresses.find(({ address }) => !allowed(address));
  if (refused || addresses.length === 0) throw new AddressRefusedError(`${host} resolves to an address that is not public`);
  const [first] = addresses;
  return { address: first!.address, family: first!.family === 6 ? 6 : 4 };
}

function requestBody(body: RequestInit['body']): Buffer | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string' || body instanceof URLSearchParams) return Buffer.from(String(body));
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  if (ArrayBuffer.isView(body)) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  throw new TypeError('guarded fetch sends only string, URLSearchParams or byte bodies');
}

/**
 * A `fetch` that resolves the URL's host first, refuses before connecting when any address is not
 * public (or the host is an IP literal, if so configured), and connects to the checked address
 * only. Redirects are returned, not followed; bodies are read up to a limit within a timeout.
 */
export function guardedFetch(options: AddressGuardOptions = {}): GuardedFetch {
  const treatedAsPublic = new Set(options.dangerouslyTreatAsPublic ?? []);
  return guardedFetchWith(options, (address) => treatedAsPublic.has(address) || isPublicAddress(address));
}

function guardedFetchWith(options: AddressGuardOptions, allowed: (address: string) => boolean): GuardedFetch {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
  return async function fetchGuarded(input, init = {}) {
    const url = new URL(input);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new AddressRefusedError(`${url.protocol} URLs are not fetched`);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const deadline = Date.now() + timeoutMs;
    let expired: NodeJS.Timeout | undefined;
    const target = await Promise.race([
      resolveTarget(host, options, allowed),
      new Promise<never>((_, reject) => {
        expired = setTimeout(() => reject(new Error(`${host} did not resolve within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]).finally(() => clearTimeout(expired));
    const body = requestBody(init.body);
    const headers = Object.fromEntries(new Headers(init.headers).entries());
    if (body) headers['content-length'] = String(body.length);
    const transport = url.protocol === 'https:' ? https : http;
    return new Promise<Response>((resolve, reject) => {
      const request = transport.request(
        {
          host,
          port: url.port || (url.protocol === 'https:' ? 443 : 80),
          path: `${url.pathname}${url.search}`,
          method: init.method ?? 'GET',
          headers,
          agent: false,
          ...(target.ca ? { ca: target.ca } : {}),
          lookup: (_hostname, lookupOptions, callback) => {
            if ((lookupOptions as { all?: boolean }).all) (callback as (error: null, addresses: { address: string; family: number }[]) => void)(null, [target]);
            else callback(null, target.address, target.family);
          },
        },
        (response) => {
          const chunks: Buffer[] = [];
          let size = 0;
          response.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > maxBodyBytes) request.destroy(new Error(`response body over ${maxBodyBytes} bytes`));
            else chunks.push(chunk);
          });
          response.on('end', () => {
            clearTimeout(timer);
            const responseHeaders = new Headers();
            for (const [name, value] of Object.entries(response.headers)) {
              for (const item of Array.isArray(value) ? value : value === undefined ? [] : [value]) responseHeaders.append(name, item);
            }
            const status = response.statusCode ?? 502;
            const nullBody = status === 204 || status === 205 || status === 304 || init.method === 'HEAD';
            resolve(new Response(nullBody ? null : Buffer.concat(chunks), { status, statusText: response.statusMessage ?? '', headers: responseHeaders }));
          });
          response.on('error', fail);
        },
      );
      const timer = setTimeout(() => request.destroy(new Error(`no answer within ${timeoutMs} ms`)), Math.max(0, deadline - Date.now()));
      function fail(error: Error) {
        clearTimeout(timer);
        reject(error);
      }
      request.on('error', fail);
      if (init.signal) {
        if (init.signal.aborted) request.destroy(new Error('aborted'));
        else init.signal.addEventListener('abort', () => request.destroy(new Error('aborted')), { once: true });
      }
      request.end(body);
    });
  };
}

async function resolvesToPublic(host: string, allowed: (address: string) => boolean): Promise<boolean> {
  if (isIP(host)) return allowed(host);
  try {
    const addresses = await lookup(host, { all: true, verbatim: true });
    return addresses.length > 0 && addresses.every(({ address }) => allowed(address));
  } catch {
    return true;
  }
}

/**
 * Fetches for URLs found in documents an operator-configured URL led to (an upstream's protected
 * resource metadata naming its authorization server, that server's metadata naming its
 * registration or token endpoint): `forConfigured(url)` gives the fetch for URLs discovered from
 * `url`. When the configured host itself is on a non-public address (the operator put the upstream
 * there), what it names may be too; when it is public, what it names must be public as well.
 */
export function discoveredUrlFetch(options: AddressGuardOptions = {}): (configuredUrl: string) => GuardedFetch {
  const treatedAsPublic = new Set(options.dangerouslyTreatAsPublic ?? []);
  const isPublic = (address: string) => treatedAsPublic.has(address) || isPublicAddress(address);
  const publicOnly = guardedFetchWith(options, isPublic);
  const anywhere = guardedFetchWith(options, () => true);
  return (configuredUrl) =>
    async function fetchDiscovered(input, init) {
      const configuredHost = new URL(configuredUrl).hostname.replace(/^\[|\]$/g, '');
      return ((await resolvesToPublic(configuredHost, isPublic)) ? publicOnly : anywhere)(input, init);
    };
}

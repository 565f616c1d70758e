import { createServer, request, type IncomingMessage, type OutgoingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { headerIdentity, type HeaderIdentitySettings, type ProxyIdentity } from '../../../server/identity/header-identity.js';

// Real requests over loopback, so the peer address is the socket's own.
let server: Server;
let reader: (req: IncomingMessage) => ProxyIdentity;

beforeAll(async () => {
  server = createServer((req, res) => res.end(JSON.stringify(reader(req))));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

async function identify(settings: HeaderIdentitySettings, headers: OutgoingHttpHeaders): Promise<ProxyIdentity> {
  reader = headerIdentity(settings);
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as ProxyIdentity));
    });
    req.on('error', reject);
    req.end();
  });
}

const fromLoopback: HeaderIdentitySettings = { name: 'x-forwarded-user', trustedProxies: ['127.0.0.1'] };

describe('headerIdentity', () => {
  it('takes the user from a trusted peer, trimmed', async () => {
    expect(await identify(fromLoopback, { 'x-forwarded-user': '  carol ' })).toEqual({ kind: 'user', userId: 'carol' });
  });

  it('reads the configured header name only', async () => {
    const settings = { name: 'x-auth-request-email', trustedProxies: ['127.0.0.0/8'] };
    expect(await identify(settings, { 'X-Auth-Request-Email': 'dave@example.com' })).toEqual({ kind: 'user', userId: 'dave@example.com' });
    expect(await identify(settings, { 'x-forwarded-user': 'dave' })).toEqual({ kind: 'absent' });
  });

  it('ignores the header from a peer that is not a trusted proxy, whatever X-Forwarded-For says', async () => {
    const settings = { name: 'x-forwarded-user', trustedProxies: ['10.9.9.9'] };
    expect(await identify(settings, { 'x-forwarded-user': 'mallory', 'x-forwarded-for': '10.9.9.9' })).toEqual({ kind: 'untrusted', peer: '127.0.0.1' });
  });

  it('reports a missing header as absent', async () => {
    expect(await identify(fromLoopback, {})).toEqual({ kind: 'absent' });
  });

  it('refuses an empty or repeated header from the trusted proxy', async () => {
    expect(await identify(fromLoopback, { 'x-forwarded-user': '   ' })).toEqual({ kind: 'invalid', reason: 'the header is empty, too long or has control characters' });
    expect(await identify(fromLoopback, { 'x-forwarded-user': ['mallory', 'carol'] })).toEqual({ kind: 'invalid', reason: 'the header appears more than once' });
    expect(await identify(fromLoopback, { 'x-forwarded-user': 'x'.repeat(257) })).toEqual({ kind: 'invalid', reason: 'the header is empty, too long or has control characters' });
  });
});

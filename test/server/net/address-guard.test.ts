import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { AddressRefusedError, guardedFetch, isPublicAddress } from '../../../server/net/address-guard.js';

describe('isPublicAddress', () => {
  it.each([
    '127.0.0.1', '127.255.255.254', '0.0.0.0', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1',
    '169.254.169.254', '100.64.0.1', '100.100.100.200', '192.0.0.192', '198.18.0.1', '224.0.0.1', '255.255.255.255',
    '::', '::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:a9fe:a9fe', '64:ff9b::a9fe:a9fe', '2002:7f00:1::',
    'fc00::1', 'fd00:ec2::254', 'fe80::1', 'fe80::1%eth0', 'ff02::1', '2001:db8::1', 'not-an-address',
  ])('refuses %s', (address) => {
    expect(isPublicAddress(address)).toBe(false);
  });

  it.each(['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '[2a00:1450:4001::200e]'])('accepts %s', (address) => {
    expect(isPublicAddress(address)).toBe(true);
  });
});

describe('guardedFetch', () => {
  it.each([
    ['http://169.254.169.254/latest/meta-data/', /169\.254\.169\.254 is not a public address/],
    ['http://[fd00:ec2::254]/', /fd00:ec2::254 is not a public address/],
    ['http://100.100.100.200/', /100\.100\.100\.200 is not a public address/],
    ['http://0x7f.1/', /127\.0\.0\.1 is not a public address/],
    ['http://localhost:1/', /localhost resolves to an address that is not public/],
    ['file:///etc/passwd', /file: URLs are not fetched/],
  ])('refuses %s before connecting', async (url, message) => {
    const refused = await guardedFetch()(url).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(AddressRefusedError);
    expect((refused as Error).message).toMatch(message);
  });

  it('refuses an IP literal, even a public one, when host names are required', async () => {
    await expect(guardedFetch({ refuseIpLiterals: true })('https://8.8.8.8/client.json')).rejects.toThrow('8.8.8.8 is an IP address; a host name is required');
  });

  it('sends the method, headers and body to an allowed address and returns status, headers and body', async () => {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        res.writeHead(201, { 'content-type': 'application/json', 'x-seen-host': req.headers.host ?? '' });
        res.end(JSON.stringify({ method: req.method, type: req.headers['content-type'], body: Buffer.concat(chunks).toString() }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.2', resolve));
    try {
      const origin = `http://127.0.0.2:${(server.address() as AddressInfo).port}`;
      const response = await guardedFetch({ dangerouslyTreatAsPublic: ['127.0.0.2'] })(`${origin}/token?x=1`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token' }),
      });
      expect(response.status).toBe(201);
      expect(response.headers.get('x-seen-host')).toBe(new URL(origin).host);
      expect(await response.json()).toEqual({ method: 'POST', type: 'application/x-www-form-urlencoded', body: 'grant_type=refresh_token' });
    } finally {
      server.close();
    }
  });
});

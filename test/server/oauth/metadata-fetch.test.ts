import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOAuthServer, type TestOAuthServer } from '../../helpers/oauth-server.js';

/** A TCP listener on every loopback address that accepts, counts and never answers. */
async function startSilentListener(): Promise<{ port: number; connections: () => number; close(): Promise<void> }> {
  let count = 0;
  const sockets = new Set<Socket>();
  const server: TcpServer = createTcpServer((socket) => {
    count += 1;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen({ host: '::', port: 0, ipv6Only: false }, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => count,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('client ID metadata document fetches', () => {
  let oauth: TestOAuthServer;
  let listener: Awaited<ReturnType<typeof startSilentListener>>;

  beforeAll(async () => {
    listener = await startSilentListener();
    oauth = await startOAuthServer({
      // The one way to a loopback document: a host name mapped on purpose (as tests of real documents do).
      configure: (config) => {
        config.oauth.dangerouslyResolveMetadataHosts = { 'silent-client.test': { address: '127.0.0.1', ca: '' } };
      },
    });
  });

  afterAll(async () => {
    await oauth.close();
    await listener.close();
  });

  async function authorize(clientId: string) {
    const url = new URL(`${oauth.issuer}/auth`);
    url.search = new URLSearchParams({
      client_id: clientId,
      response_type: 'code',
      redirect_uri: 'http://127.0.0.1:9/callback',
      scope: 'mcp:tools',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
    }).toString();
    const response = await fetch(url, { redirect: 'manual' });
    return { status: response.status, location: response.headers.get('location'), body: await response.text() };
  }

  it.each([
    ['an IPv4 loopback literal', (port: number) => `https://127.0.0.1:${port}/client.json`],
    ['an IPv4 loopback literal in decimal', (port: number) => `https://2130706433:${port}/client.json`],
    ['an IPv6 loopback literal', (port: number) => `https://[::1]:${port}/client.json`],
    ['an IPv4-mapped IPv6 loopback literal', (port: number) => `https://[::ffff:127.0.0.1]:${port}/client.json`],
    ['a name resolving to loopback', (port: number) => `https://localhost:${port}/client.json`],
  ])('refuses a client_id URL on %s without opening a connection', async (_name, clientIdAt) => {
    const before = listener.connections();
    const answer = await authorize(clientIdAt(listener.port));
    expect(answer.status).toBe(400);
    expect(answer.location).toBeNull();
    expect(answer.body).toContain('<code>invalid_client</code>');
    expect(listener.connections()).toBe(before);
  });

  it('fetches a document once for an authorization request, and not again for the next one', async () => {
    const clientId = `https://silent-client.test:${listener.port}/client.json`;
    const first = await authorize(clientId);
    expect(first.status).toBe(400);
    expect(first.body).toContain('<code>invalid_client</code>');
    expect(listener.connections()).toBe(1);
    expect((await authorize(clientId)).status).toBe(400);
    expect(listener.connections()).toBe(1);
  });
});

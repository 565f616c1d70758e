import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A forwarding proxy that signs requests with a gateway access token; see {@link startTokenProxy}. */
export interface TokenProxy {
  /** `http://127.0.0.1:<port>`: append the gateway path (`/mcp/<upstream>`). */
  url: string;
  close(): Promise<void>;
}

/**
 * Puts an `Authorization: Bearer <token>` on every request and forwards it to `target`, streaming
 * the answer back: the conformance runner sends no token, and the gateway is never weakened for
 * it. `Host` and `Origin` that name the proxy on a loopback name are rewritten to the same
 * loopback name at the gateway's port; any other value (a DNS-rebinding probe) passes unchanged,
 * so the gateway's own Host/Origin guard is what the suite sees.
 */
export async function startTokenProxy(target: string, accessToken: string): Promise<TokenProxy> {
  const gateway = new URL(target);
  let ownPort = 0;
  const loopback = /^(localhost|127\.0\.0\.1|\[::1\]):(\d+)$/i;
  const retarget = (value: string) => {
    const match = loopback.exec(value);
    return match && Number(match[2]) === ownPort ? `${match[1]}:${gateway.port}` : value;
  };
  const server: Server = createServer((incoming, outgoing) => {
    const headers: IncomingHttpHeaders = { ...incoming.headers, authorization: `Bearer ${accessToken}` };
    if (headers.host) headers.host = retarget(headers.host);
    if (typeof headers.origin === 'string' && headers.origin.startsWith('http://')) headers.origin = `http://${retarget(headers.origin.slice('http://'.length))}`;
    const forwarded = request({ hostname: gateway.hostname, port: gateway.port, path: incoming.url, method: incoming.method, headers }, (answer) => {
      outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
      outgoing.flushHeaders();
      answer.pipe(outgoing);
    });
    forwarded.on('error', (error) => {
      if (!outgoing.headersSent) outgoing.writeHead(502, { 'content-type': 'text/plain' });
      outgoing.end(`token proxy: ${error.message}`);
    });
    outgoing.on('close', () => {
      if (!outgoing.writableFinished) forwarded.destroy();
    });
    incoming.pipe(forwarded);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  ownPort = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${ownPort}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

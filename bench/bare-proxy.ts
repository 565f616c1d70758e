/**
 * The floor of the forward path for a proxy written in Node: an HTTP server that sends each POST
 * on to one upstream URL and the answer back, piping the bytes both ways, with no routing, no
 * authorization, no parsing and no framework. What it adds over calling the upstream directly is
 * what Node's HTTP server and client cost on this machine before the gateway does anything.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** Request headers the upstream needs; the rest (authorization included) is not passed on. */
const passedOn = ['content-type', 'content-length', 'accept', 'mcp-protocol-version', 'mcp-session-id', 'mcp-method', 'mcp-name'];
/** Response headers the client needs. */
const passedBack = ['content-type', 'content-length', 'mcp-session-id'];

function pick(headers: http.IncomingHttpHeaders, names: readonly string[]): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of names) {
    const value = headers[name];
    if (typeof value === 'string') picked[name] = value;
  }
  return picked;
}

export async function startBareProxy(upstreamUrl: string): Promise<{ url: string; close(): Promise<void> }> {
  const upstream = new URL(upstreamUrl);
  // Idle connections close as the gateway's do (server/mcp/upstream-request.ts).
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64, timeout: 4_000 });
  const server = http.createServer((req, res) => {
    const out = http.request({ host: upstream.hostname, port: upstream.port, path: upstream.pathname, method: req.method, headers: pick(req.headers, passedOn), agent }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, pick(answer.headers, passedBack));
      answer.pipe(res);
    });
    out.once('error', () => res.destroy());
    req.pipe(out);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${upstream.pathname}`,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      agent.destroy();
    },
  };
}

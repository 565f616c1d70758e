import http from 'node:http';

/** Which web process the next requests go to. */
export type Route = 'a' | 'b' | 'alternate';

/** A round-robin HTTP load balancer in front of two web processes, steerable by the test. */
export interface Balancer {
  url: string;
  route: Route;
  /** Which process answered each request, in order. */
  served: ('a' | 'b')[];
  close(): Promise<void>;
}

/**
 * Forwards each request, `Host` untouched as a load balancer does, to web process `a` or `b`:
 * alternately by default, or to one of them when the test says so (after killing the other).
 */
export async function startBalancer(targets: { a: number; b: number }): Promise<Balancer> {
  let next: 'a' | 'b' = 'a';
  const balancer: Balancer = { url: '', route: 'alternate', served: [], close: async () => {} };
  const server = http.createServer((request, response) => {
    const target = balancer.route === 'alternate' ? next : balancer.route;
    next = target === 'a' ? 'b' : 'a';
    balancer.served.push(target);
    const upstream = http.request({ host: '127.0.0.1', port: targets[target], method: request.method, path: request.url, headers: request.headers }, (answer) => {
      response.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(response);
    });
    upstream.on('error', () => {
      if (!response.headersSent) response.writeHead(502).end();
      else response.destroy();
    });
    request.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  balancer.url = `http://127.0.0.1:${port}`;
  balancer.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return balancer;
}

/**
 * The forward path: a 2026-07-28 `tools/call` through `/mcp/<upstream>` against the same call
 * straight to the same upstream, side by side in one run, at concurrency 1 and 16. The fixture
 * and the gateway run in processes of their own; this process only sends requests.
 * Budget (DESIGN.md): ≤ 0.5 ms added at p50 and ≤ 3 ms at p99 at concurrency 1; ≥ 60 % of
 * direct throughput at concurrency 16.
 * Run: `node --import tsx bench/forward.ts [--requests 2000]`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { fmt, percentile } from './support.js';

const requests = Number(process.argv[process.argv.indexOf('--requests') + 1]) || 2_000;
const children: ChildProcess[] = [];

/** Starts `forward-server.ts` with `args`; resolves with the JSON line it prints when ready. */
async function startServer<T>(args: string[]): Promise<T> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./forward-server.ts', import.meta.url)), ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    if (line.startsWith('{')) return JSON.parse(line) as T;
  }
  throw new Error(`forward-server ${args[0]} ended before it was ready`);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const body = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: {
    name: 'test_simple_text',
    arguments: {},
    _meta: {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientInfo': { name: 'bench', version: '1' },
      'io.modelcontextprotocol/clientCapabilities': {},
    },
  },
});

/** One call; resolves with its latency in ms, rejects unless the answer carries a result. */
function call(url: string, token: string | undefined): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const request = http.request(url, {
      method: 'POST',
      agent,
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'test_simple_text',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
    });
    request.once('response', (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.once('end', () => (response.statusCode === 200 && text.includes('"result"') ? resolve(performance.now() - started) : reject(new Error(`${response.statusCode}: ${text.slice(0, 200)}`))));
    });
    request.once('error', reject);
    request.end(body);
  });
}

/** `total` calls with `concurrency` in flight; latencies and calls per second. */
async function load(url: string, token: string | undefined, total: number, concurrency: number): Promise<{ latencies: number[]; perSecond: number }> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        next += 1;
        latencies.push(await call(url, token));
      }
    }),
  );
  return { latencies, perSecond: (total / (performance.now() - started)) * 1000 };
}

try {
  const fixture = await startServer<{ url: string }>(['fixture']);
  const gateway = await startServer<{ url: string; token: string }>(['gateway', fixture.url]);
  const targets = { direct: [fixture.url, undefined], gateway: [gateway.url, gateway.token] } as const;
  for (const [url, token] of Object.values(targets)) await load(url, token, 300, 4);

  // Alternating rounds, so drift on the machine falls on both sides alike.
  const rounds = 4;
  const results = { direct: { c1: [] as number[], c16: [] as number[], rate16: [] as number[] }, gateway: { c1: [] as number[], c16: [] as number[], rate16: [] as number[] } };
  for (let round = 0; round < rounds; round += 1) {
    for (const side of ['direct', 'gateway'] as const) {
      const [url, token] = targets[side];
      const one = await load(url, token, requests / rounds, 1);
      const sixteen = await load(url, token, (requests * 2) / rounds, 16);
      results[side].c1.push(...one.latencies);
      results[side].c16.push(...sixteen.latencies);
      results[side].rate16.push(sixteen.perSecond);
    }
  }
  const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
  const p = (side: 'direct' | 'gateway', q: number) => percentile(results[side].c1, q);
  const added50 = p('gateway', 50) - p('direct', 50);
  const added99 = p('gateway', 99) - p('direct', 99);
  const ratio = mean(results.gateway.rate16) / mean(results.direct.rate16);
  console.log(`forward: direct c1 p50 ${fmt(p('direct', 50), 3)} ms p99 ${fmt(p('direct', 99), 3)} ms; c16 ${fmt(mean(results.direct.rate16), 0)} calls/s`);
  console.log(`forward: gateway c1 p50 ${fmt(p('gateway', 50), 3)} ms p99 ${fmt(p('gateway', 99), 3)} ms; c16 ${fmt(mean(results.gateway.rate16), 0)} calls/s`);
  console.log(
    `forward: tools/call through /mcp/<upstream> vs direct, 2026-07-28: added p50 ${fmt(added50, 3)} ms (budget ≤ 0.5), added p99 ${fmt(added99, 3)} ms (budget ≤ 3) at c1; throughput ${fmt(ratio * 100, 0)} % of direct at c16 (budget ≥ 60 %), N=${requests}+${requests * 2}`,
  );
} finally {
  for (const child of children) child.stdin?.end();
  agent.destroy();
}

/**
 * The forward path: a `tools/call` straight to an upstream, through `/mcp/<upstream>` and through
 * the aggregate `/mcp`, side by side in one run, in both protocol eras (2026-07-28 stateless;
 * 2025-11-25 in one session), at concurrency 1 and 16, through a bare Node proxy (bench/bare-proxy.ts:
 * what Node's HTTP server and client add before any gateway work, the floor), and through FastMCP's
 * proxy (Python, no auth) as the peer, measured in the same run. The upstream is the one-tool echo server of
 * `bench/echo-upstream.ts` (stateless in both eras); `--upstream conformance` puts the conformance
 * fixture there instead, whose 2026-07-28 requests each build its whole server (every conformance
 * tool, resource and prompt). The upstream, the gateway and the peer run in processes of their
 * own; this process only sends requests.
 * Budget (DESIGN.md): ≤ 0.5 ms added at p50 and ≤ 3 ms at p99 at concurrency 1; ≥ 60 % of
 * direct throughput at concurrency 16.
 * Run: `node --import tsx bench/forward.ts [--requests 2000] [--quick] [--no-peer] [--upstream echo|conformance] [--phases]` (`--no-peer`: without FastMCP's proxy).
 * `--phases` adds, for the gateway and the bare proxy, where each spends a call's time at concurrency 1
 * (bench/phases.ts): before the upstream request goes out, the upstream's own time until its answer's
 * headers, and after the upstream's answer arrives.
 * The server processes run `forward-server.ts` compiled as `npm start` compiles the gateway
 * (scripts/build-server.mjs) and started as it starts it (scripts/run-server.sh): the code measured is
 * the code users run, not its form under a TypeScript loader.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import http from 'node:http';
import { createInterface } from 'node:readline';
import type { PhaseTimes } from './phases.js';
import { projectPath } from '../server/paths.js';
import { buildCompiled, compiledStart, cpuSecondsOf, fmt, freePort, percentile } from './support.js';

const quick = process.argv.includes('--quick');
const withPeer = !process.argv.includes('--no-peer');
const requests = Number(process.argv[process.argv.indexOf('--requests') + 1]) || (quick ? 200 : 2_000);
const upstreamKind = process.argv.includes('--upstream') ? process.argv[process.argv.indexOf('--upstream') + 1] : 'echo';
if (upstreamKind !== 'echo' && upstreamKind !== 'conformance') throw new Error(`--upstream must be echo or conformance (got "${upstreamKind}")`);
/** The tool every call names, and its arguments. */
const tool = upstreamKind === 'echo' ? { name: 'echo', arguments: { text: 'hello' } } : { name: 'test_simple_text', arguments: {} };
const children: ChildProcess[] = [];
/** Where the gateway and the bare proxy write their phase times (`--phases`). */
const phasesDir = process.argv.includes('--phases') ? mkdtempSync(path.join(tmpdir(), 'cg-bench-phases-')) : undefined;

/** FastMCP from PyPI, pinned, installed once into a cache folder (never into the project). */
const FASTMCP = 'fastmcp==4.2.3';
const fastmcpDir = projectPath('node_modules/.cache/consent-gateway-bench/fastmcp-4.2.3');

/** FastMCP's proxy in front of `upstream`, or why it cannot run here. */
async function startFastMcpProxy(upstream: string): Promise<{ url: string } | { skipped: string }> {
  try {
    if (!existsSync(`${fastmcpDir}/fastmcp`)) {
      await promisify(execFile)('python3', ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--target', fastmcpDir, FASTMCP], { timeout: 300_000 });
    }
  } catch (error) {
    return { skipped: `pip could not install ${FASTMCP}: ${(error as Error).message.split('\n')[0]}` };
  }
  const script = projectPath('bench/fastmcp-proxy.py');
  return startProcess<{ url: string }>('python3', [script, upstream, String(await freePort())], { ...process.env, PYTHONPATH: fastmcpDir });
}

/** Where this run compiled `forward-server.ts` (scripts/build-server.mjs, as `npm start` compiles the gateway). */
let buildDir: string | undefined;

/** Starts the compiled `forward-server.ts` with `args` as scripts/run-server.sh starts the gateway; resolves with the JSON line it prints when ready. */
function startServer<T>(script: string, args: string[]): Promise<T & { pid: number }> {
  const phases = phasesDir && (args[0] === 'gateway' || args[0] === 'proxy') ? { FORWARD_PHASES_FILE: path.join(phasesDir, `${args[0]}.json`) } : {};
  const start = compiledStart(script, { ...process.env, ...phases });
  return startProcess<T>(process.execPath, [...start.args, ...args], start.env);
}

/** The `--phases` lines: for each era and side, the p50 of each phase of the calls made alone. */
function printPhases(dir: string): void {
  const read = (name: string) => JSON.parse(readFileSync(path.join(dir, `${name}.json`), 'utf8')) as PhaseTimes;
  const gateway = read('gateway');
  const proxy = read('proxy');
  for (const era of ['2026-07-28', '2025-11-25']) {
    const sides: [string, PhaseTimes[string] | undefined][] = [
      ['/mcp/<upstream>', gateway[`/mcp/fixture ${era}`]],
      ['/mcp', gateway[`/mcp ${era}`]],
      [bare, proxy[`/mcp ${era}`]],
    ];
    for (const [name, times] of sides) {
      if (!times) continue;
      console.log(
        `forward phases ${era} through ${name}: before the upstream request p50 ${fmt(percentile(times.before, 50), 0)} µs, the upstream until its answer's headers p50 ${fmt(percentile(times.upstream, 50), 0)} µs, after the upstream's answer p50 ${fmt(percentile(times.after, 50), 0)} µs (${times.before.length} calls alone)`,
      );
    }
  }
}

/** Starts a server process; resolves with the first JSON line it prints and its pid. Ended when this run ends. */
async function startProcess<T>(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<T & { pid: number }> {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'], env });
  children.push(child);
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    if (line.startsWith('{')) return { ...(JSON.parse(line) as T), pid: child.pid! };
  }
  throw new Error(`${command} ${args[0]} ended before it was ready`);
}

// An idle timeout of its own, so the agent heeds each server's `Keep-Alive: timeout` and closes an
// idle connection before the server does: a call sent on one the server is closing fails with a reset.
const agent = new http.Agent({ keepAlive: true, maxSockets: 64, timeout: 4_000 });
type Era = 'modern' | 'legacy';

/** One target of the run: where the call goes, as whom, under which tool name, in which era. */
interface Target {
  url: string;
  token: string | undefined;
  tool: string;
  era: Era;
  /** The 2025 session the calls of a legacy target share. */
  session?: string;
}

function post(target: Target, body: object, extra: Record<string, string>): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request(target.url, {
      method: 'POST',
      agent,
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...(target.token ? { authorization: `Bearer ${target.token}` } : {}),
        ...(target.session ? { 'mcp-session-id': target.session } : {}),
        ...extra,
      },
    });
    request.once('response', (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.once('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, text }));
    });
    request.once('error', reject);
    request.end(JSON.stringify(body));
  });
}

/** Opens the 2025 session a legacy target's calls share (none where the server is stateless). */
async function openSession(target: Target): Promise<Target> {
  const answer = await post(target, { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } }, {});
  const session = answer.headers['mcp-session-id'];
  if (answer.status !== 200 || !answer.text.includes('"result"')) throw new Error(`initialize at ${target.url} answered ${answer.status}: ${answer.text.slice(0, 200)}`);
  const opened = { ...target, ...(typeof session === 'string' ? { session } : {}) };
  await post(opened, { jsonrpc: '2.0', method: 'notifications/initialized' }, { 'mcp-protocol-version': '2025-11-25' });
  return opened;
}

/** JSON-RPC ids: unique per session, as the spec asks of a client. */
let nextId = 0;

/** One call; resolves with its latency in ms, rejects unless the answer carries a result. */
async function call(target: Target): Promise<number> {
  const started = performance.now();
  const params =
    target.era === 'modern'
      ? {
          name: target.tool,
          arguments: tool.arguments,
          _meta: {
            'io.modelcontextprotocol/protocolVersion': '2026-07-28',
            'io.modelcontextprotocol/clientInfo': { name: 'bench', version: '1' },
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        }
      : { name: target.tool, arguments: tool.arguments };
  const headers: Record<string, string> =
    target.era === 'modern' ? { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': target.tool } : { 'mcp-protocol-version': '2025-11-25' };
  const answer = await post(target, { jsonrpc: '2.0', id: (nextId += 1), method: 'tools/call', params }, headers);
  if (answer.status !== 200 || !answer.text.includes('"result"')) throw new Error(`${target.url}: ${answer.status}: ${answer.text.slice(0, 200)}`);
  return performance.now() - started;
}

/** `total` calls with `concurrency` in flight; latencies, calls per second, and CPU µs per call of the process `pid`. */
async function load(target: Target, total: number, concurrency: number, pid?: number): Promise<{ latencies: number[]; perSecond: number; cpuMicros: number }> {
  const latencies: number[] = [];
  let next = 0;
  const cpuBefore = pid === undefined ? undefined : await cpuSecondsOf(pid);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        next += 1;
        latencies.push(await call(target));
      }
    }),
  );
  const perSecond = (total / (performance.now() - started)) * 1000;
  const cpuAfter = pid === undefined ? undefined : await cpuSecondsOf(pid);
  return { latencies, perSecond, cpuMicros: cpuBefore === undefined || cpuAfter === undefined ? Number.NaN : ((cpuAfter - cpuBefore) / total) * 1e6 };
}

const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;

/** The side that measures what any Node proxy adds: bench/bare-proxy.ts. */
const bare = 'a bare Node proxy (the floor)';

try {
  buildDir = await buildCompiled('bench-forward', { 'forward-server': 'bench/forward-server.ts' });
  const servers = path.join(buildDir, 'forward-server.js');
  const fixture = await startServer<{ url: string }>(servers, [upstreamKind === 'echo' ? 'echo' : 'fixture']);
  console.log(`setup: upstream ${upstreamKind === 'echo' ? 'one-tool echo server (bench/echo-upstream.ts), stateless in both eras' : 'conformance fixture (2026-07-28 requests build its whole server each)'}`);
  const gateway = await startServer<{ url: string; token: string; aggregateUrl: string; aggregateToken: string }>(servers, ['gateway', fixture.url]);
  const bareProxy = await startServer<{ url: string }>(servers, ['proxy', fixture.url]);
  const peer = withPeer ? await startFastMcpProxy(fixture.url) : { skipped: '--no-peer' };
  if ('skipped' in peer) console.log(`forward through FastMCP's proxy: skipped (${peer.skipped})`);
  for (const era of ['modern', 'legacy'] as const) {
    const sides = {
      direct: { url: fixture.url, token: undefined, tool: tool.name, era } as Target,
      '/mcp/<upstream>': { url: gateway.url, token: gateway.token, tool: tool.name, era } as Target,
      '/mcp': { url: gateway.aggregateUrl, token: gateway.aggregateToken, tool: `fixture__${tool.name}`, era } as Target,
      [bare]: { url: bareProxy.url, token: undefined, tool: tool.name, era } as Target,
      ...('url' in peer ? { "FastMCP's proxy": { url: peer.url, token: undefined, tool: tool.name, era } as Target } : {}),
      // What /mcp sends the conformance fixture for a 2025 session's call (its 2025 leg keeps
      // sessions), measured in the same rounds; the echo upstream gets the call in 2025 as it came.
      ...(era === 'legacy' && upstreamKind === 'conformance' ? { 'direct 2026-07-28': { url: fixture.url, token: undefined, tool: tool.name, era: 'modern' } as Target } : {}),
    };
    if (era === 'legacy') for (const [name, target] of Object.entries(sides)) if (target.era === 'legacy') sides[name as keyof typeof sides] = await openSession(target);
    for (const target of Object.values(sides)) await load(target, quick ? 50 : 300, 4);

    // Alternating rounds, so drift on the machine falls on all sides alike.
    const rounds = quick ? 1 : 4;
    const results = Object.fromEntries(Object.keys(sides).map((name) => [name, { c1: [] as number[], rate16: [] as number[], cpu: [] as number[] }])) as Record<
      string,
      { c1: number[]; rate16: number[]; cpu: number[] }
    >;
    for (let round = 0; round < rounds; round += 1) {
      for (const [name, target] of Object.entries(sides) as [keyof typeof sides, Target][]) {
        // The peer is an order of magnitude slower: a tenth of the calls gives its figures in the same run.
        const share = name === "FastMCP's proxy" ? 0.1 : 1;
        results[name]!.c1.push(...(await load(target, Math.ceil((requests * share) / rounds), 1)).latencies);
        // The gateway's own CPU per call: a figure the other processes on the machine barely move.
        const c16 = await load(target, Math.ceil((requests * 2 * share) / rounds), 16, name.startsWith('/mcp') ? gateway.pid : name === bare ? bareProxy.pid : undefined);
        results[name]!.rate16.push(c16.perSecond);
        results[name]!.cpu.push(c16.cpuMicros);
      }
    }
    const direct = results['direct']!;
    const directModern = results['direct 2026-07-28'];
    for (const name of Object.keys(sides).filter((side) => !side.startsWith('direct')) as (keyof typeof sides)[]) {
      const side = results[name]!;
      // The budgets are the gateway's own (DESIGN.md); the peer is measured beside it, not held to them.
      const budget = (text: string) => (name.startsWith('/mcp') ? ` (budget ${text})` : '');
      const calls = name === "FastMCP's proxy" ? `N=${Math.ceil(requests / 10)}+${Math.ceil(requests / 5)}` : `N=${requests}+${requests * 2}`;
      console.log(
        `forward ${era === 'modern' ? '2026-07-28' : '2025-11-25'} tools/call through ${name} vs direct: added p50 ${fmt(percentile(side.c1, 50) - percentile(direct.c1, 50), 3)} ms${budget('≤ 0.5')}, added p99 ${fmt(percentile(side.c1, 99) - percentile(direct.c1, 99), 3)} ms${budget('≤ 3')} at c1; throughput ${fmt((mean(side.rate16) / mean(direct.rate16)) * 100, 0)} % of direct at c16${budget('≥ 60 %')}${era === 'legacy' && name === '/mcp' && directModern ? ` (over direct 2026-07-28 calls, the era /mcp speaks to this upstream, whose 2025 leg keeps sessions: added p50 ${fmt(percentile(side.c1, 50) - percentile(directModern.c1, 50), 3)} ms, throughput ${fmt((mean(side.rate16) / mean(directModern.rate16)) * 100, 0)} %)` : ''}${name.startsWith('/mcp') ? `, gateway CPU ${fmt(mean(side.cpu), 0)} µs/call` : name === bare ? `, proxy CPU ${fmt(mean(side.cpu), 0)} µs/call` : ''}; direct p50 ${fmt(percentile(direct.c1, 50), 3)} ms, ${fmt(mean(direct.rate16), 0)} calls/s at c16; ${calls}`,
      );
    }
  }
} finally {
  // The Node servers end when their stdin closes; the peer does not watch it, so what is left is stopped.
  for (const child of children) child.stdin?.end();
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(() => child.kill('SIGTERM'), 3_000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
        }),
    ),
  );
  agent.destroy();
  if (buildDir) rmSync(buildDir, { recursive: true, force: true });
}
if (phasesDir) {
  printPhases(phasesDir);
  rmSync(phasesDir, { recursive: true, force: true });
}

/**
 * A load run against the built gateway on the embedded default (`npm start`: web + worker in one
 * process, the embedded Temporal dev server, SQLite, the bundled demo upstream), driven from this
 * process over plain HTTP only: `--flows` consent flows kept in flight for `--seconds` (each: the
 * authorization request, the consent page, identity, services, decision, the redirect to the
 * client, the code exchanged for a gateway token, as `test/helpers/consent-driver.ts` drives
 * one), and beside them steady `/mcp` traffic (`--mcp` callers, each a 2026-07-28 `tools/call` of
 * the demo upstream's `echo` after the other, with a token a flow gave). The limits on `/auth`
 * and the consent page are raised for the run, since all of it comes from one address.
 *
 * Prints flows/s, requests/s and errors, the time each consent step took (p50/p90, waiting its turn
 * included: the gateway lets `temporal.flowRequests.concurrency` such requests run at once), and
 * the gateway's RSS before, at its peak and after the run, with the verdict whether it fell back:
 * after the run RSS is sampled each second until it is back within a quarter of its rise (V8 gives
 * the idle workflow thread's garbage back only after some idle time, about a minute here), for at
 * most `--pause` seconds. The Temporal dev server's RSS beside it. A consent request's Temporal
 * calls are bounded by `--request-timeout` (`temporal.requestTimeout`, default here 30 s: its turn
 * comes first, but on a machine shared with other work Temporal itself can take longer than the
 * default 4 s).
 *
 * Run: `node --import tsx bench/load.ts [--seconds 60] [--flows 200] [--mcp 8] [--pause 120] [--request-timeout 30s] [--quick]`
 * (`--quick`: 10 s, 20 flows, 2 callers, at most 20 s pause); `--help` prints this.
 */
import { parseArgs } from 'node:util';
import { registerClient } from '../test/helpers/consent-driver.js';
import { callEcho, completeFlow, configYaml, redirectUri, rss } from './consent-load.js';
import { buildGateway, spawnGateway } from './gateway-process.js';
import { cpuSecondsOf, fmt, percentile, sleep } from './support.js';

const usage = `Usage: npm run bench:load -- [options]
  --seconds N            how long the flows are kept in flight (default 60; --quick 10)
  --flows N              consent flows in flight at once (default 200; --quick 20)
  --mcp N                steady /mcp callers beside them (default 8; --quick 2)
  --pause N              longest wait after the run for RSS to fall back, in seconds (default 120; --quick 20)
  --request-timeout D    the gateway's temporal.requestTimeout (default 30s; the gateway's own is 4s)
  --quick                the short run the quick benchmarks do
  --help                 this text`;

function options() {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string' },
      flows: { type: 'string' },
      mcp: { type: 'string' },
      pause: { type: 'string' },
      'request-timeout': { type: 'string', default: '30s' },
      quick: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const count = (name: string, raw: string | undefined, fallback: number) => {
    const n = raw === undefined ? fallback : Number(raw);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number (got "${raw}")`);
    return n;
  };
  const quick = values.quick;
  return {
    seconds: count('seconds', values.seconds, quick ? 10 : 60),
    flows: count('flows', values.flows, quick ? 20 : 200),
    mcp: count('mcp', values.mcp, quick ? 2 : 8),
    requestTimeout: values['request-timeout'],
    settleMs: quick ? 3_000 : 15_000,
    pauseSeconds: count('pause', values.pause, quick ? 20 : 120),
  };
}

async function main(): Promise<void> {
  const settings = options();
  await buildGateway();
  const gateway = await spawnGateway({ configYaml: configYaml(0, settings.requestTimeout) });
  try {
    await gateway.ready();
    const devServer = await gateway.devServer();
    const clientId = await registerClient(gateway.url, [redirectUri], 'Load run');
    // One flow first: the token the /mcp callers use, and every code path warmed once.
    const first = await completeFlow(gateway, clientId, 'load-warmup');
    await callEcho(gateway, first.token, 0);
    await sleep(settings.settleMs / 3);
    const before = await rss(gateway, devServer);

    let peak = before;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const now = await rss(gateway, devServer).catch(() => undefined);
        if (now && now.gateway > peak.gateway) peak = { ...now };
        if (now && now.devServer > peak.devServer) peak = { ...peak, devServer: now.devServer };
        await sleep(250);
      }
    })();

    const counts = { flows: 0, flowRequests: 0, flowErrors: 0, calls: 0, callErrors: 0 };
    const errors = new Map<string, number>();
    const noteError = (error: unknown) => {
      const key = (error instanceof Error ? error.message : String(error)).split('\n')[0]!.slice(0, 120);
      errors.set(key, (errors.get(key) ?? 0) + 1);
    };
    const stepTimes = new Map<string, number[]>();
    const cpuBefore = await cpuSecondsOf(gateway.pid);
    const started = performance.now();
    const endAt = started + settings.seconds * 1000;
    let users = 0;
    let ids = 0;
    const flowLoops = Array.from({ length: settings.flows }, async () => {
      while (performance.now() < endAt) {
        try {
          const { requests } = await completeFlow(gateway, clientId, `load-${(users += 1)}`, (label, ms) => {
            (stepTimes.get(label) ?? stepTimes.set(label, []).get(label)!).push(ms);
          });
          counts.flows += 1;
          counts.flowRequests += requests;
        } catch (error) {
          counts.flowErrors += 1;
          noteError(error);
        }
      }
    });
    const mcpLoops = Array.from({ length: settings.mcp }, async () => {
      while (performance.now() < endAt) {
        try {
          await callEcho(gateway, first.token, (ids += 1));
          counts.calls += 1;
        } catch (error) {
          counts.callErrors += 1;
          noteError(error);
        }
      }
    });
    await Promise.all([...flowLoops, ...mcpLoops]);
    const elapsed = (performance.now() - started) / 1000;
    const cpuShare = (((await cpuSecondsOf(gateway.pid)) ?? Number.NaN) - (cpuBefore ?? Number.NaN)) / elapsed;
    sampling = false;
    await sampler;
    // Back within a quarter of the rise counts as fallen back; sampled each second, for at most --pause.
    const fallenBack = (now: { gateway: number }) => now.gateway <= before.gateway + Math.max(0, peak.gateway - before.gateway) / 4;
    const runEnded = performance.now();
    let after = await rss(gateway, devServer);
    while (!fallenBack(after) && performance.now() - runEnded < settings.pauseSeconds * 1000) {
      await sleep(1_000);
      after = await rss(gateway, devServer);
    }
    const pausedSeconds = (performance.now() - runEnded) / 1000;
    const fellBack = fallenBack(after);

    for (const [message, count] of errors) console.log(`error ×${count}: ${message}`);
    console.log(`steps (p50 / p90 ms, waiting for a turn included): ${[...stepTimes].map(([label, times]) => `${label} ${fmt(percentile(times, 50), 0)} / ${fmt(percentile(times, 90), 0)}`).join(', ')}`);
    console.log(
      `load: ${settings.flows} consent flows in flight + ${settings.mcp} /mcp callers for ${fmt(elapsed, 0)} s: ` +
        `${fmt(counts.flows / elapsed)} flows/s (${counts.flows} complete, ${counts.flowErrors} errors), ` +
        `${fmt((counts.flowRequests + counts.calls) / elapsed, 0)} requests/s (consent ${fmt(counts.flowRequests / elapsed, 0)}/s, /mcp ${fmt(counts.calls / elapsed, 0)}/s, ${counts.callErrors} /mcp errors), gateway CPU ${fmt(cpuShare * 100, 0)} % of a core; ` +
        `web + worker RSS before ${fmt(before.gateway, 0)} MiB, peak ${fmt(peak.gateway, 0)} MiB, after ${fmt(after.gateway, 0)} MiB ${fmt(pausedSeconds, 0)} s later (${fellBack ? 'fell back' : `DID NOT fall back within ${settings.pauseSeconds} s`}); ` +
        `Temporal dev server RSS ${fmt(before.devServer, 0)} → ${fmt(peak.devServer, 0)} → ${fmt(after.devServer, 0)} MiB`,
    );

  } finally {
    await gateway.stop().catch(() => undefined);
    await gateway.dispose();
  }
}

await main();

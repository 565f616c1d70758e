/**
 * The gateway's memory on the embedded default (`npm start`: web + worker in one process, the
 * embedded Temporal dev server beside it): RSS idle after start, then with `--grants` users who
 * completed a consent flow (a grant and a gateway token each) and `--pending` consent flows left
 * waiting on the user (authorization request and consent page only), all driven over plain HTTP.
 *
 * Run: `node --import tsx bench/memory.ts [--grants 1000] [--pending 1000] [--quick]` (`--quick`: 20 and 20).
 * Prints one line: both figures with the budgets (≤ 250 MiB idle, ≤ 400 MiB loaded), the peak RSS,
 * and (not with `--quick`) the RSS another 45 s later, once V8 has had the idle time to give back
 * the garbage the load left in its heaps.
 */
import { parseArgs } from 'node:util';
import { registerClient } from '../test/helpers/consent-driver.js';
import { completeFlow, configYaml, inParallel, openPendingFlows, redirectUri, rss } from './consent-load.js';
import { buildGateway, spawnGateway } from './gateway-process.js';
import { fmt, memoryOf, sleep } from './support.js';

const budget = { idleMiB: 250, loadedMiB: 400 } as const;

const { values } = parseArgs({ options: { grants: { type: 'string' }, pending: { type: 'string' }, quick: { type: 'boolean', default: false } } });
const grants = Number(values.grants ?? (values.quick ? 20 : 1000));
const pending = Number(values.pending ?? (values.quick ? 20 : 1000));
if (!Number.isInteger(grants) || grants < 0 || !Number.isInteger(pending) || pending < 0) throw new Error('--grants and --pending must be whole numbers');
const settleMs = values.quick ? 2_000 : Number(process.env.SETTLE_MS ?? 10_000);
const laterMs = values.quick ? 0 : 45_000;

await buildGateway();
const gateway = await spawnGateway({ configYaml: configYaml(pending, '30s') });
try {
  await gateway.ready();
  const devServer = await gateway.devServer();
  await sleep(settleMs);
  const idle = await rss(gateway, devServer);

  const clientId = await registerClient(gateway.url, [redirectUri], 'Memory run');
  const granted = await inParallel(grants, 20, (index) => completeFlow(gateway, clientId, `memory-${index}`));
  const held = await openPendingFlows(gateway, clientId, pending);
  await sleep(settleMs);
  const loaded = await rss(gateway, devServer);
  const peakMiB = ((await memoryOf(gateway.pid))?.peakRssKiB ?? Number.NaN) / 1024;
  const later = laterMs > 0 ? await sleep(laterMs).then(() => rss(gateway, devServer)) : undefined;
  console.log(
    `memory: web + worker RSS ${fmt(idle.gateway, 0)} MiB idle (budget ≤ ${budget.idleMiB} MiB), ` +
      `${fmt(loaded.gateway, 0)} MiB with ${held.done} consent flows pending and ${granted.done} grants (budget ≤ ${budget.loadedMiB} MiB), ` +
      `peak ${fmt(peakMiB, 0)} MiB${later ? `, ${fmt(later.gateway, 0)} MiB ${laterMs / 1000} s later` : ''}` +
      `${granted.failed + held.failed > 0 ? `, ${granted.failed} flows and ${held.failed} pending flows FAILED` : ''}; Temporal dev server ${fmt(idle.devServer, 0)} → ${fmt(loaded.devServer, 0)} MiB`,
  );
  for (const reason of [...granted.reasons, ...held.reasons]) console.log(`memory: a failure: ${reason}`);
  if (granted.failed + held.failed > 0) console.log(gateway.fail('what the gateway printed last').message);
} finally {
  await gateway.stop().catch(() => undefined);
  await gateway.dispose();
}

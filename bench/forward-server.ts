/**
 * One server process of the forward benchmark (bench/forward.ts): `echo` serves the one-tool echo
 * upstream (bench/echo-upstream.ts), `fixture` the conformance fixture; `proxy <fixture url>` the bare
 * Node proxy of bench/bare-proxy.ts in front of it; `gateway <fixture url>` serves the whole gateway web app with that fixture
 * as its one upstream and prints gateway access tokens bound to `/mcp/fixture` and to `/mcp`. Each prints one
 * JSON line on stdout when ready, then runs until stdin closes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from '@temporalio/client';
import { loadConfig } from '../server/config.js';
import { loadCipher } from '../server/crypto/keys.js';
import { createGateway } from '../server/gateway.js';
import { createLogger } from '../server/log.js';
import { mcpScope } from '../server/oauth/provider.js';
import { openStore } from '../server/store/open-store.js';
import { startConformanceUpstream } from '../test/helpers/conformance-upstream.js';
import { issueAccessTokens, registerPublicClient } from '../test/helpers/issued-tokens.js';
import { startBareProxy } from './bare-proxy.js';
import { startEchoUpstream } from './echo-upstream.js';
import { recordPhases } from './phases.js';
import { freePort } from './support.js';

const [role, fixtureUrl] = process.argv.slice(2);
const closing: Array<() => Promise<void>> = [];
// bench/forward.ts --phases: where this process spends each call's time, written when it ends.
const phasesFile = process.env['FORWARD_PHASES_FILE'];
if (phasesFile) {
  const phases = recordPhases(phasesFile);
  closing.push(async () => phases.write());
}

if (role === 'echo') {
  const echo = await startEchoUpstream();
  closing.push(() => echo.close());
  console.log(JSON.stringify({ url: echo.url }));
} else if (role === 'fixture') {
  const fixture = await startConformanceUpstream({ name: 'bench-fixture' });
  closing.push(() => fixture.close());
  console.log(JSON.stringify({ url: fixture.url }));
} else if (role === 'proxy' && fixtureUrl) {
  const proxy = await startBareProxy(fixtureUrl);
  closing.push(() => proxy.close());
  console.log(JSON.stringify({ url: proxy.url }));
} else if (role === 'gateway' && fixtureUrl) {
  const dir = await mkdtemp(path.join(tmpdir(), 'cg-bench-forward-'));
  const port = await freePort();
  const config = loadConfig({ env: { GATEWAY_DATA_DIR: dir, GATEWAY_PORT: String(port), TEMPORAL_ADDRESS: '127.0.0.1:9' } });
  config.upstreams = [{ name: 'fixture', displayName: 'Fixture', mcpUrl: fixtureUrl, auth: { type: 'none' }, scopes: [] }];
  const log = createLogger('error');
  const store = await openStore(config.store);
  const cipher = await loadCipher(config, log);
  // An upstream without OAuth never asks Temporal anything on the forward path; the client stays unconnected.
  const gateway = await createGateway(config, { store, cipher, temporal: new Client(), log, temporalHealth: async () => ({ ok: true, namespace: 'default' }) });
  const resources = [gateway.oauth.resources.of('fixture'), gateway.oauth.mcpResource];
  const clientId = 'bench-forward-client';
  await registerPublicClient(store, clientId);
  const [token, aggregateToken] = await issueAccessTokens(gateway.oauth, { userId: 'bench-user', clientId, resources });
  await store.saveConsent({ userId: 'bench-user', clientId, upstreams: ['fixture'], scopes: [mcpScope], flowId: 'bench', grantedAt: new Date().toISOString() });
  const server = await gateway.listen(port, '127.0.0.1');
  closing.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await gateway.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  console.log(JSON.stringify({ url: `${config.http.publicUrl}/mcp/fixture`, token, aggregateUrl: `${config.http.publicUrl}/mcp`, aggregateToken }));
} else {
  throw new Error('usage: forward-server.ts echo | fixture | proxy <upstream url> | gateway <upstream url>');
}

process.stdin.resume();
process.stdin.once('end', async () => {
  for (const close of closing) await close();
  process.exit(0);
});

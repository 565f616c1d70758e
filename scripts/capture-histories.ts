/**
 * Runs consent flows on a throwaway dev server with the real worker and saves their histories
 * under test/histories/, where the replay test checks that today's workflow code still replays
 * them. Run after a deliberate, versioned change, with a suffix that keeps the older captures:
 * `node --import tsx scripts/capture-histories.ts v3`. `--only=grant` (or `--only=consent`)
 * captures one workflow type only; `--only=connect` the consent flow that connects an upstream
 * through a child `upstreamConnect`.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection, WithStartWorkflowOperation } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import { TokenCipher } from '../server/crypto/token-cipher.js';
import { projectPath } from '../server/paths.js';
import { freePort } from '../test/helpers/free-port.js';
import { SqliteStore } from '../server/store/sqlite-store.js';
import { ensureProjectTemporalCli } from '../server/temporal/cli.js';
import { loadTemporalDevSettings, startDevServer } from '../server/temporal/dev-server.js';
import { signalUpstreamConnected, startConsentFlow } from '../server/temporal/client.js';
import { ensureWorkflowBundle } from '../server/temporal/workflow-bundle.js';
import { recordFlowMove, rememberedConsent } from '../server/routes/interaction/flow.js';
import { chooseIdentity, chooseServices, connectUpstream, type ConsentFlowInput, consentFlowRevision, decide, firstFlowChange, upstreamCallback } from '../workflows/consent-flow/messages.js';
import { disconnect, grantState, refreshNow, upstreamConnected } from '../workflows/upstream-grant/messages.js';

const settings = await loadTemporalDevSettings();
const cli = await ensureProjectTemporalCli(process.env);
const port = await freePort();
const dir = await mkdtemp(path.join(tmpdir(), 'cg-capture-'));
const server = await startDevServer({ cliPath: cli.path, settings, overrides: { port, dbFile: null, headless: true } });
const store = await SqliteStore.open(path.join(dir, 'gateway.sqlite'));
const connection = await Connection.connect({ address: server.address });
const client = new Client({ connection, namespace: server.namespace });
const nativeConnection = await NativeConnection.connect({ address: server.address });
const taskQueue = 'capture';
const cipher = new TokenCipher(randomBytes(32));
const worker = await Worker.create({
  connection: nativeConnection,
  namespace: server.namespace,
  taskQueue,
  workflowBundle: { codePath: (await ensureWorkflowBundle()).codePath },
  activities: createActivities({
    store,
    cipher,
    // Explicit endpoints, never called: the grant captured below has no tokens, so its refresh is refused locally.
    upstreams: [
      {
        name: 'notion',
        mcpUrl: 'http://127.0.0.1:9/mcp',
        auth: { type: 'oauth', endpoints: { authorization: 'http://127.0.0.1:9/authorize', token: 'http://127.0.0.1:9/token' }, client: { kind: 'static', clientId: 'capture', authMethod: 'none' }, resource: true },
        scopes: [],
      },
    ],
    redirectUri: 'http://localhost/oauth/upstream/callback',
  }),
});

const input = (ttlMs: number): ConsentFlowInput => ({
  flowId: randomUUID(),
  client: { clientId: 'capture-client', clientName: 'Capture Client', redirectHost: 'localhost:6274', registration: 'dcr' },
  upstreams: ['github', 'notion'],
  scopes: ['mcp:tools'],
  ttlMs,
  revision: consentFlowRevision,
});

/** Starts a flow and writes its first row, as the consent page does. */
async function startFlow(flow: ConsentFlowInput) {
  const handle = await startConsentFlow(client, taskQueue, flow);
  await recordFlowMove(store, firstFlowChange(flow, new Date()));
  return handle;
}

/** Sends a step and writes the move it made, as the consent routes do. */
async function moved(update: Promise<{ lastChange?: Parameters<typeof recordFlowMove>[1] }>): Promise<void> {
  await recordFlowMove(store, (await update).lastChange);
}

const positional = process.argv.slice(2).filter((arg) => !arg.startsWith('--'));
const only = process.argv.find((arg) => arg.startsWith('--only='))?.slice('--only='.length);
const suffix = positional[0] ? `-${positional[0]}` : '';

async function save(base: string, workflowId: string): Promise<void> {
  const name = `${base}${suffix}`;
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  await writeFile(projectPath('test/histories', `${name}.json`), `${historyToJSON(history)}\n`);
  console.log(`saved test/histories/${name}.json (${history.events?.length} events)`);
}

await worker.runUntil(async () => {
  if (only !== 'consent' && only !== 'connect') {
    // A grant whose refresh is refused (needs reconnect), reconnected by a signal, then disconnected.
    const grantInput = { userId: 'alice', upstream: 'notion', version: 1, expiresAt: Math.floor(Date.now() / 1000) + 3600, refreshable: true };
    const grant = await signalUpstreamConnected(client, taskQueue, grantInput);
    await grant.executeUpdate(refreshNow, { args: [{ reason: 'capture', seenAccessTokenVersion: 1 }] });
    await grant.signal(upstreamConnected, { ...grantInput, version: 2 });
    await grant.query(grantState);
    await grant.signal(disconnect);
    await grant.result();
    await save('upstream-grant-reconnect-disconnect', grant.workflowId);
  }
  if (only === 'grant') return;
  if (only !== 'connect') await captureConsentFlows();
  if (only === 'consent') return;

  // A connect at the services step through a child upstreamConnect, refused at the upstream; then
  // another service is chosen and approved. Carol has no remembered consent from the flows above.
  const connectingInput = input(600_000);
  const connecting = await startFlow(connectingInput);
  await moved(connecting.executeUpdate(chooseIdentity, { args: [{ userId: 'carol', source: 'dev' }] }));
  const prepared = await connecting.executeUpdate(connectUpstream, { args: [{ upstream: 'notion' }] });
  const authorizationRef = prepared.authorizationRef ?? '';
  const url = new URL(cipher.open((await store.getExchangeResult(authorizationRef)) ?? '', authorizationRef));
  const stateHash = createHash('sha256').update(url.searchParams.get('state') ?? '').digest('base64url');
  await connecting.executeUpdate(upstreamCallback, { args: [{ upstream: 'notion', stateHash, error: 'access_denied' }] });
  await moved(connecting.executeUpdate(chooseServices, { args: [{ upstreams: ['github'], remembered: await rememberedConsent(store, connectingInput.flowId) }] }));
  await moved(connecting.executeUpdate(decide, { args: [{ decision: 'approve' }] }));
  await connecting.result();
  await save('consent-flow-connect-child', connecting.workflowId);
});

async function captureConsentFlows(): Promise<void> {
  const approvedInput = input(600_000);
  const approved = await startFlow(approvedInput);
  await moved(approved.executeUpdate(chooseIdentity, { args: [{ userId: 'alice', source: 'dev' }] }));
  await moved(approved.executeUpdate(chooseServices, { args: [{ upstreams: ['github', 'notion'], remembered: await rememberedConsent(store, approvedInput.flowId) }] }));
  await moved(approved.executeUpdate(decide, { args: [{ decision: 'approve' }] }));
  await approved.result();
  // The consent route remembers the approval once the authorization result is stored.
  await store.saveConsent({ userId: 'alice', clientId: approvedInput.client.clientId, upstreams: ['github', 'notion'], scopes: approvedInput.scopes, flowId: approvedInput.flowId, grantedAt: new Date().toISOString() });
  await save('consent-flow-approved', approved.workflowId);

  // The identity update arrives with the start, in the flow's first workflow task.
  const withStartInput = input(1_000);
  const startOp = new WithStartWorkflowOperation('consentFlow', {
    workflowId: `consent:${withStartInput.flowId}`,
    taskQueue,
    args: [withStartInput],
    workflowIdConflictPolicy: 'FAIL',
  });
  await client.workflow.executeUpdateWithStart(chooseIdentity, { args: [{ userId: 'bob', source: 'dev' }], startWorkflowOperation: startOp });
  const expired = await startOp.workflowHandle();
  await expired.result();
  await save('consent-flow-update-with-start-expired', expired.workflowId);

  // The same user and client again, for the same set: the remembered consent skips approval.
  const againInput = input(600_000);
  const again = await startFlow(againInput);
  await moved(again.executeUpdate(chooseIdentity, { args: [{ userId: 'alice', source: 'dev' }] }));
  await moved(again.executeUpdate(chooseServices, { args: [{ upstreams: ['github'], remembered: await rememberedConsent(store, againInput.flowId) }] }));
  await again.result();
  await save('consent-flow-remembered', again.workflowId);
}

await nativeConnection.close();
await connection.close();
await store.close();
await server.stop();
await rm(dir, { recursive: true, force: true });

/**
 * Consent flows driven headlessly: N complete flows (start → chooseIdentity → chooseServices →
 * decide approve → result) at concurrency C against a fresh dev server, with the gateway's real
 * worker (prebuilt bundle, real activities, SQLite store in a temp folder) in this process; then
 * the same N and C for the bare workflow of `bench/bare-workflow.ts`, Temporal's own floor.
 *
 * Run: `node --import tsx bench/consent-flows.ts [--flows 200] [--concurrency 20] [--warmup 20] [--rounds 1] [--memory-db] [--workers 2] [--postgres] [--max-cached-workflows N]`.
 * `--rounds N` measures N pairs of batches (bare and consent, N flows each), the order of the pair
 * swapped every round, so load from other processes that comes and goes falls on both alike; the
 * summary gives the medians over the rounds, and the ratio of CPU per flow (bench process + dev
 * server), which moves far less with that load than the rates do.
 * `--workers N` runs N gateway workers on the task queue (a fleet's workers, here in one process);
 * `--postgres` puts the store on a PostgreSQL server the bench starts in a temporary folder.
 * `--max-cached-workflows N` bounds the gateway workers' workflow cache (`temporal.worker.maxCachedWorkflows`);
 * below the concurrency, most steps find their flow evicted and replay its history first.
 * `--memory-db` keeps the dev server's state in memory instead of a temporary file, to see how much
 * of the cost is the server's own persistence. Prints detail lines, then one summary line with the
 * DESIGN.md budget next to each figure.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Client } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { loadConfig } from '../server/config.js';
import { loadCipher } from '../server/crypto/keys.js';
import { createLogger } from '../server/log.js';
import { openStore } from '../server/store/open-store.js';
import { projectPath } from '../server/paths.js';
import { findPostgresBin, startPostgresServer } from '../test/helpers/postgres-server.js';
import type { FlowChange, GatewayStore } from '../server/store/store.js';
import { ensureProjectTemporalCli } from '../server/temporal/cli.js';
import { loadTemporalDevSettings, startDevServer, type DevServer } from '../server/temporal/dev-server.js';
import { connectClient, startConsentFlow } from '../server/temporal/client.js';
import { createWorker } from '../server/temporal/worker.js';
import { recordFlowMove, rememberedConsent } from '../server/routes/interaction/flow.js';
import { chooseIdentity, chooseServices, type ConsentFlowInput, decide, firstFlowChange } from '../workflows/consent-flow/messages.js';
import { bareChooseIdentity, bareChooseServices, bareDecide, bareFlow } from './bare-workflow.js';
import { cpuSecondsOf, fmt, freePort, machineBusySeconds, median, percentile } from './support.js';

const budget = { flowsPerSecond: 25, ratioPercent: 80 } as const;
const stepNames = ['start', 'chooseIdentity', 'chooseServices', 'decide', 'result'] as const;
const flowTtlMs = 10 * 60_000;
/** Share of one core that other processes may use during a batch before the figures are flagged. */
const disturbedShare = 0.2;
const flowDeadlineMs = 120_000;

/** One completed flow: its workflow id and timestamps before the start, then after each of {@link stepNames}. */
interface FlowRun {
  workflowId: string;
  marks: number[];
}

/** What one measured batch of flows gave. */
interface PhaseResult {
  flows: number;
  elapsedMs: number;
  flowsPerSecond: number;
  latenciesMs: number[];
  stepMs: number[][];
  /** One of the batch's flows, to look at its history. */
  sampleWorkflowId: string;
  /** CPU seconds used during the batch by this process (client + worker), the dev server and everything else. */
  cpu: { bench: number; server: number | undefined; others: number | undefined };
}

function options(): { flows: number; concurrency: number; warmup: number; rounds: number; memoryDb: boolean; workers: number; postgres: boolean; maxCachedWorkflows?: string } {
  const { values } = parseArgs({
    options: {
      flows: { type: 'string', default: '200' },
      concurrency: { type: 'string', default: '20' },
      warmup: { type: 'string', default: '20' },
      rounds: { type: 'string', default: '1' },
      'memory-db': { type: 'boolean', default: false },
      workers: { type: 'string', default: '1' },
      postgres: { type: 'boolean', default: false },
      'max-cached-workflows': { type: 'string' },
    },
  });
  const positive = (name: string, raw: string) => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0 || (n === 0 && name !== 'warmup')) throw new Error(`--${name} must be a positive integer (got "${raw}")`);
    return n;
  };
  return {
    flows: positive('flows', values.flows),
    concurrency: positive('concurrency', values.concurrency),
    warmup: positive('warmup', values.warmup),
    rounds: positive('rounds', values.rounds),
    memoryDb: values['memory-db'],
    workers: positive('workers', values.workers),
    postgres: values.postgres,
    // loadConfig checks it as it checks the environment variable.
    ...(values['max-cached-workflows'] !== undefined ? { maxCachedWorkflows: values['max-cached-workflows'] } : {}),
  };
}

/** The store, with the duration of each `recordFlowChange` call pushed onto `samples`. */
function timingWrites(store: GatewayStore, samples: number[]): GatewayStore {
  return new Proxy(store, {
    get(target, key) {
      if (key === 'recordFlowChange') {
        return async (change: FlowChange) => {
          const started = performance.now();
          try {
            return await target.recordFlowChange(change);
          } finally {
            samples.push(performance.now() - started);
          }
        };
      }
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** Rejects when `work` takes longer than `ms`, so a stuck flow ends the run instead of hanging it. */
async function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`a flow took longer than ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `count` flows with at most `concurrency` in flight; the first failure aborts the batch. */
async function drive(count: number, concurrency: number, serverPid: number | undefined, runFlow: () => Promise<FlowRun>): Promise<PhaseResult> {
  const runs: FlowRun[] = [];
  let next = 0;
  const cpuBefore = process.cpuUsage();
  const serverCpuBefore = serverPid === undefined ? undefined : await cpuSecondsOf(serverPid);
  const machineBefore = await machineBusySeconds();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) {
        next += 1;
        runs.push(await withDeadline(runFlow(), flowDeadlineMs));
      }
    }),
  );
  const elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  const serverCpuAfter = serverPid === undefined ? undefined : await cpuSecondsOf(serverPid);
  const machineAfter = await machineBusySeconds();
  const benchCpu = (cpu.user + cpu.system) / 1e6;
  const serverCpu = serverCpuBefore === undefined || serverCpuAfter === undefined ? undefined : serverCpuAfter - serverCpuBefore;
  const marks = runs.map((run) => run.marks);
  return {
    flows: count,
    elapsedMs,
    flowsPerSecond: count / (elapsedMs / 1000),
    latenciesMs: marks.map((m) => m[m.length - 1]! - m[0]!),
    stepMs: stepNames.map((_, i) => marks.map((m) => m[i + 1]! - m[i]!)),
    sampleWorkflowId: runs.at(-1)!.workflowId,
    cpu: {
      bench: benchCpu,
      server: serverCpu,
      others:
        machineBefore === undefined || machineAfter === undefined || serverCpu === undefined
          ? undefined
          : Math.max(0, machineAfter - machineBefore - benchCpu - serverCpu),
    },
  };
}

function consentInput(): ConsentFlowInput {
  return {
    flowId: randomUUID(),
    client: { clientId: 'bench-client', clientName: 'Bench Client', redirectHost: 'localhost:6274', registration: 'dcr' },
    upstreams: ['github', 'notion'],
    scopes: ['mcp:tools'],
    ttlMs: flowTtlMs,
  };
}

/** Drives flows as the consent routes do: each start and step, then the route's write of the move it made. */
function consentFlowRunner(client: Client, taskQueue: string, store: GatewayStore): () => Promise<FlowRun> {
  return async () => {
    const marks = [performance.now()];
    const input = consentInput();
    const handle = await startConsentFlow(client, taskQueue, input);
    await recordFlowMove(store, firstFlowChange(input, new Date()));
    marks.push(performance.now());
    // A user of its own per flow: a user who approved this client before skips the approve step.
    const afterIdentity = await handle.executeUpdate(chooseIdentity, { args: [{ userId: `bench-${randomUUID()}`, source: 'dev' }] });
    await recordFlowMove(store, afterIdentity.lastChange);
    marks.push(performance.now());
    const afterServices = await handle.executeUpdate(chooseServices, { args: [{ upstreams: ['github'], remembered: await rememberedConsent(store, input.flowId) }] });
    if (afterServices.step !== 'approve') throw new Error(`consent flow ${handle.workflowId} is at step "${afterServices.step}" after chooseServices, not "approve"`);
    await recordFlowMove(store, afterServices.lastChange);
    marks.push(performance.now());
    const afterDecision = await handle.executeUpdate(decide, { args: [{ decision: 'approve' }] });
    await recordFlowMove(store, afterDecision.lastChange);
    marks.push(performance.now());
    const outcome = await handle.result();
    if (outcome.kind !== 'approved') throw new Error(`consent flow ${handle.workflowId} ended ${outcome.kind}, not approved`);
    marks.push(performance.now());
    return { workflowId: handle.workflowId, marks };
  };
}

function bareFlowRunner(client: Client, taskQueue: string): () => Promise<FlowRun> {
  return async () => {
    const marks = [performance.now()];
    const handle = await client.workflow.start(bareFlow, { taskQueue, workflowId: `bare:${randomUUID()}`, args: [flowTtlMs] });
    marks.push(performance.now());
    await handle.executeUpdate(bareChooseIdentity, { args: [{ userId: 'bench-user', source: 'dev' }] });
    marks.push(performance.now());
    await handle.executeUpdate(bareChooseServices, { args: [{ upstreams: ['github'] }] });
    marks.push(performance.now());
    await handle.executeUpdate(bareDecide, { args: [{ decision: 'approve' }] });
    marks.push(performance.now());
    const outcome = await handle.result();
    if (outcome !== 'approve') throw new Error(`bare flow ${handle.workflowId} ended ${outcome}, not approve`);
    marks.push(performance.now());
    return { workflowId: handle.workflowId, marks };
  };
}

/** What Temporal does for one flow: its history's events, workflow tasks, activities and upserts. */
async function historyShape(client: Client, workflowId: string): Promise<string> {
  const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const count = (has: (event: (typeof events)[number]) => unknown) => events.filter((event) => has(event)).length;
  return (
    `${events.length} events, ${count((e) => e.workflowTaskCompletedEventAttributes)} workflow tasks, ` +
    `${count((e) => e.activityTaskScheduledEventAttributes)} activities, ` +
    `${count((e) => e.upsertWorkflowSearchAttributesEventAttributes)} search attribute upserts`
  );
}

function describePhase(label: string, result: PhaseResult, history: string): string {
  const ms = (values: number[], p: number) => `${fmt(percentile(values, p), 0)} ms`;
  const steps = stepNames.map((name, i) => `${name} ${ms(result.stepMs[i]!, 50)}`).join(', ');
  const seconds = result.elapsedMs / 1000;
  const core = (cpuSeconds: number | undefined) => (cpuSeconds === undefined ? 'n/a' : `${fmt((cpuSeconds / seconds) * 100, 0)} %`);
  const perFlow = (cpuSeconds: number | undefined) => (cpuSeconds === undefined ? 'n/a' : `${fmt((cpuSeconds / result.flows) * 1000, 0)} ms`);
  // Unlike the rate, CPU per flow hardly moves when other processes compete for the cores.
  const ceiling = fmt(availableParallelism() / ((result.cpu.bench + (result.cpu.server ?? Number.NaN)) / result.flows));
  return [
    `${label}: ${fmt(result.flowsPerSecond)} flows/s (${result.flows} flows in ${fmt(seconds, 2)} s), latency p50 ${ms(result.latenciesMs, 50)}, p95 ${ms(result.latenciesMs, 95)}, p99 ${ms(result.latenciesMs, 99)}`,
    `${label}:   per step p50: ${steps}`,
    `${label}:   CPU (% of one core): bench process (client + worker) ${core(result.cpu.bench)}, Temporal dev server ${core(result.cpu.server)}, ` +
      `everything else (other processes, kernel threads) ${core(result.cpu.others)}`,
    `${label}:   CPU per flow: bench process ${perFlow(result.cpu.bench)}, Temporal dev server ${perFlow(result.cpu.server)}; ` +
      `CPU-bound ceiling on ${availableParallelism()} cores ${ceiling} flows/s`,
    `${label}:   history of one flow: ${history}`,
  ].join('\n');
}

async function main(): Promise<void> {
  const { flows, concurrency, warmup, rounds, memoryDb, workers, postgres, maxCachedWorkflows } = options();
  const settings = await loadTemporalDevSettings();
  const cli = await ensureProjectTemporalCli(process.env);
  const dir = await mkdtemp(path.join(tmpdir(), 'cg-bench-flows-'));
  const cleanups: Array<() => Promise<unknown>> = [() => rm(dir, { recursive: true, force: true })];
  try {
    // Bundled before anything runs, so webpack's CPU and memory stay out of the figures.
    const { code: bareBundle } = await bundleWorkflowCode({
      workflowsPath: projectPath('bench/bare-workflow.ts'),
      logger: { trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error, log() {} },
    });

    const server: DevServer = await startDevServer({
      cliPath: cli.path,
      settings,
      overrides: { port: await freePort(), dbFile: memoryDb ? null : path.join(dir, 'temporal.db'), headless: true },
      logFile: path.join(dir, 'temporal.log'),
    });
    cleanups.push(() => server.stop());

    let storeUrl: string | undefined;
    if (postgres) {
      const bin = findPostgresBin();
      if (!bin) throw new Error('--postgres needs PostgreSQL (initdb and pg_ctl; Debian: apt-get install postgresql)');
      const pg = await startPostgresServer(bin);
      cleanups.push(() => pg.stop());
      storeUrl = pg.url;
    }
    const config = loadConfig({
      env: {
        TEMPORAL_ADDRESS: server.address,
        TEMPORAL_NAMESPACE: server.namespace,
        TEMPORAL_TASK_QUEUE: 'bench-consent',
        GATEWAY_DATA_DIR: dir,
        ...(storeUrl ? { GATEWAY_STORE_URL: storeUrl } : {}),
        ...(maxCachedWorkflows !== undefined ? { TEMPORAL_WORKER_MAX_CACHED_WORKFLOWS: maxCachedWorkflows } : {}),
      },
    });
    const store = await openStore(config.store);
    cleanups.push(() => store.close());
    const client = await connectClient(config.temporal);
    cleanups.push(() => client.connection.close());

    // createWorker first: it installs the SDK runtime that the bare worker's connection then shares.
    const storeWrites: number[] = [];
    const cipher = await loadCipher(config, createLogger('error'));
    const consent = await createWorker(config, { store: timingWrites(store, storeWrites), cipher });
    cleanups.push(() => consent.connection.close());
    const others = [];
    for (let i = 1; i < workers; i += 1) {
      const other = await createWorker(config, { store: timingWrites(store, storeWrites), cipher });
      cleanups.push(() => other.connection.close());
      others.push(other);
    }
    const bareConnection = await NativeConnection.connect({ address: server.address });
    cleanups.push(() => bareConnection.close());
    const bareTaskQueue = 'bench-bare';
    const bareWorker = await Worker.create({
      connection: bareConnection,
      namespace: server.namespace,
      taskQueue: bareTaskQueue,
      workflowBundle: { code: bareBundle },
      shutdownGraceTime: '5 seconds',
    });

    console.log(
      `setup: Temporal CLI ${cli.version} dev server on ${server.address} (${memoryDb ? 'in-memory' : 'temp file'} db, headless), ${availableParallelism()} cores, ` +
        `load average ${loadavg().map((l) => fmt(l, 2)).join(' ')}; N=${flows} C=${concurrency}, warm-up ${warmup} flows each`,
    );

    const serverPid = server.process.pid;
    const runBare = bareFlowRunner(client, bareTaskQueue);
    const runConsent = consentFlowRunner(client, config.temporal.taskQueue, timingWrites(store, storeWrites));
    const bareRuns: PhaseResult[] = [];
    const consentRuns: PhaseResult[] = [];
    const measureBare = async (label: string) => {
      const result = await drive(flows, concurrency, serverPid, runBare);
      bareRuns.push(result);
      console.log(describePhase(label, result, await historyShape(client, result.sampleWorkflowId)));
    };
    const measureConsent = async (label: string) => {
      storeWrites.length = 0;
      const result = await drive(flows, concurrency, serverPid, runConsent);
      consentRuns.push(result);
      console.log(describePhase(label, result, await historyShape(client, result.sampleWorkflowId)));
      console.log(`${label}:   store.recordFlowChange: ${storeWrites.length} calls, p50 ${fmt(percentile(storeWrites, 50), 1)} ms, p95 ${fmt(percentile(storeWrites, 95), 1)} ms`);
    };
    // Every worker polls throughout, so the batches can take turns.
    const measured = (async () => {
      if (warmup > 0) {
        await drive(warmup, concurrency, serverPid, runBare);
        await drive(warmup, concurrency, serverPid, runConsent);
      }
      for (let round = 1; round <= rounds; round += 1) {
        const suffix = rounds > 1 ? ` (round ${round})` : '';
        const pair = [() => measureBare(`bare${suffix}`), () => measureConsent(`consent${suffix}`)];
        for (const measure of round % 2 === 1 ? pair : pair.reverse()) await measure();
      }
    })();
    await Promise.all([bareWorker.runUntil(measured), consent.worker.runUntil(measured), ...others.map((other) => other.worker.runUntil(measured))]);

    const cpuPerFlow = (r: PhaseResult) => (r.cpu.bench + (r.cpu.server ?? Number.NaN)) / r.flows;
    const pairs = consentRuns.map((r, i) => ({ rate: r.flowsPerSecond / bareRuns[i]!.flowsPerSecond, cpu: cpuPerFlow(bareRuns[i]!) / cpuPerFlow(r) }));
    if (rounds > 1) {
      for (const [i, pair] of pairs.entries()) {
        console.log(`round ${i + 1}: ratio ${fmt(pair.rate * 100, 0)} %, CPU per flow ratio ${fmt(pair.cpu * 100, 0)} % (bare ${fmt(cpuPerFlow(bareRuns[i]!) * 1000, 0)} ms, consent ${fmt(cpuPerFlow(consentRuns[i]!) * 1000, 0)} ms)`);
      }
    }
    const consentRate = median(consentRuns.map((r) => r.flowsPerSecond));
    const ratio = median(pairs.map((pair) => pair.rate)) * 100;
    const latencies = consentRuns.flatMap((r) => r.latenciesMs);
    const othersShare = Math.max(...[...bareRuns, ...consentRuns].map((r) => (r.cpu.others ?? 0) / (r.elapsedMs / 1000)));
    console.log(
      `consent-flows: ${fmt(consentRate)} flows/s (budget ≥ ${budget.flowsPerSecond}), ` +
        `bare ${fmt(median(bareRuns.map((r) => r.flowsPerSecond)))} flows/s, ratio ${fmt(ratio, 0)} % (budget ≥ ${budget.ratioPercent} %), ` +
        `CPU per flow ratio ${fmt(median(pairs.map((pair) => pair.cpu)) * 100, 0)} %, ` +
        `p50 ${fmt(percentile(latencies, 50), 0)} ms, p95 ${fmt(percentile(latencies, 95), 0)} ms, ` +
        `N=${flows} C=${concurrency}${rounds > 1 ? `, median of ${rounds} rounds` : ''}${memoryDb ? ', in-memory db' : ''}, ${workers} worker${workers > 1 ? 's' : ''}, cache ${config.temporal.worker.maxCachedWorkflows} workflows, store ${postgres ? 'PostgreSQL' : 'SQLite'}` +
        (othersShare > disturbedShare ? `, DISTURBED: other processes and kernel threads used up to ${fmt(othersShare * 100, 0)} % of a core` : ''),
    );
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => console.error(`cleanup failed: ${String(error)}`));
  }
}

await main();

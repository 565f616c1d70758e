import { createHash } from 'node:crypto';
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client as TemporalClient, Connection } from '@temporalio/client';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../server/store/open-store.js';
import type { GatewayStore } from '../../server/store/store.js';
import { authorizationUrl, ConsentDriver, createPkce, postForm, registerClient, type HttpResult } from '../helpers/consent-driver.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startGatewayProcesses, type GatewayProcesses, type RestartableProcess } from '../helpers/gateway-processes.js';
import { createTestDatabase, postgresUnavailable } from '../helpers/postgres.js';
import { temporalUnavailable } from '../helpers/temporal.js';

/**
 * The crash matrix: each of the three processes of a deployment (worker, web server, Temporal dev
 * server) is killed with SIGKILL at each of five points of a consent flow that connects one
 * upstream, then started again, and the flow is driven on. Every flow must end with the client
 * holding a gateway token that works for an MCP tool call at the upstream, the upstream must have
 * seen exactly one code exchange, and the store must hold one token row, one OAuth grant and one
 * consent for the flow's user.
 *
 * The points are reached by watching real state, not by hooks: the interaction page served, the
 * identity step answered, the exchange activity blocked on a store lock (PostgreSQL: `LOCK TABLE`
 * in a transaction of the test's own) before it asks the upstream or before it writes the tokens,
 * the decision answered.
 */

const points = ['authorize', 'identity', 'callback', 'exchange', 'approve'] as const;
type Point = (typeof points)[number];
const victims = ['worker', 'web', 'temporal'] as const;
type Victim = (typeof victims)[number];

const pointNames: Record<Point, string> = {
  authorize: 'after authorize (interaction page served)',
  identity: 'after identity (user signed in)',
  callback: 'in the upstream callback, before the code exchange',
  exchange: 'after the code exchange, before the token write',
  approve: 'after approve, before the redirect to the client',
};

const cases = points.flatMap((point) => victims.map((victim) => ({ point, victim })));
const redirectUri = 'http://127.0.0.1:9/callback';

/** Polls `probe` until it answers true; fails with `what` after `timeoutMs`. */
async function until(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A table lock held in a transaction of the test's own: a store statement that needs it waits. */
interface TableLock {
  /** How many other sessions of this database wait for a lock on the table. */
  waiters(): Promise<number>;
  release(): Promise<void>;
}

async function lockTable(url: string, table: string, mode: 'ACCESS EXCLUSIVE' | 'EXCLUSIVE'): Promise<TableLock> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('BEGIN');
  await client.query(`LOCK TABLE ${table} IN ${mode} MODE`);
  let released = false;
  return {
    async waiters() {
      const { rows } = await client.query<{ n: string }>(
        `SELECT count(*) AS n FROM pg_locks
         WHERE NOT granted AND relation = $1::regclass AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
        [table],
      );
      return Number(rows[0]?.n ?? 0);
    },
    async release() {
      if (released) return;
      released = true;
      await client.query('ROLLBACK').catch(() => {});
      await client.end();
    },
  };
}

/** One request whose failure (a connection the killed process dropped) is a value, not a throw. */
async function settle(request: Promise<HttpResult>): Promise<HttpResult | Error> {
  return request.catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))));
}

/** Requests answered 503 and sent again (`<case>: <step>`): where a user had to try again. */
const repeated: string[] = [];
/** The case under way, for {@link repeated}. */
let currentCase = '';

/**
 * Sends a request again while the gateway answers 503 `temporarily_unavailable` (the worker or
 * Temporal briefly away), after its `Retry-After`, as the page it shows asks the user to; the
 * steps are idempotent (update ids), so repeating one is what a user may always do.
 */
async function patiently<T extends { status: number; headers: Headers }>(step: string, send: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    const result = await send();
    if (result.status !== 503 || Date.now() > deadline) return result;
    repeated.push(`${currentCase}: ${step}`);
    await new Promise((resolve) => setTimeout(resolve, Number(result.headers.get('retry-after') ?? '1') * 1000));
  }
}

const skip = temporalUnavailable || postgresUnavailable;

describe.skipIf(skip)('crash matrix: worker, web server and Temporal killed at five points of a consent flow', () => {
  let storeUrl: string;
  let store: GatewayStore;
  let gateway: GatewayProcesses;
  const upstreams: Array<{ name: string; upstream: FakeUpstream; login: string }> = [];
  /** An upstream of its own for loading one callback again. */
  let replay: { name: string; upstream: FakeUpstream; login: string };
  const survived: string[] = [];
  /** Each case's consent flow id, once its authorization request has one. */
  const flowIds: string[] = [];
  const failed: string[] = [];
  const startedAt = Date.now();

  beforeAll(async () => {
    storeUrl = await createTestDatabase();
    // PostgreSQL then notices within 100 ms that a killed process's connection is gone, even while
    // the statement it sent waits for a lock, and rolls it back: as if the process had never sent it.
    const admin = new pg.Client({ connectionString: storeUrl });
    await admin.connect();
    await admin.query(`ALTER DATABASE ${new URL(storeUrl).pathname.slice(1)} SET client_connection_check_interval = '100ms'`);
    await admin.end();
    for (const [index] of cases.entries()) {
      const login = `octo-${index + 1}`;
      upstreams.push({ name: `up${index + 1}`, upstream: await startFakeUpstream({ preset: 'github', autoLogin: login }), login });
    }
    replay = { name: 'replay', upstream: await startFakeUpstream({ preset: 'github', autoLogin: 'octo-replay' }), login: 'octo-replay' };
    gateway = await startGatewayProcesses({ upstreams: [...upstreams, replay], storeUrl });
    store = await openStore({ backend: 'postgres', url: storeUrl, poolSize: 2 });
  }, 180_000);

  afterAll(async () => {
    console.log(`crash matrix: ${survived.length}/${cases.length} survived in ${Math.round((Date.now() - startedAt) / 1000)} s`);
    console.log(`  requests a user sent again after a 503: ${repeated.join(', ') || 'none'}`);
    for (const failure of failed) console.log(`  failed: ${failure}`);
    await gateway?.close();
    await store?.close();
    for (const { upstream } of upstreams) await upstream.close();
    await replay?.upstream.close();
  }, 60_000);

  function processOf(victim: Victim): RestartableProcess {
    return gateway[victim];
  }

  async function withTemporal<T>(work: (client: TemporalClient) => Promise<T>): Promise<T> {
    const connection = await Connection.connect({ address: gateway.temporalAddress });
    try {
      return await work(new TemporalClient({ connection, namespace: gateway.namespace }));
    } finally {
      await connection.close();
    }
  }

  /** Drives one consent flow through, killing `victim` at `point` and starting it again; `trace` hears each step. */
  async function runCase(index: number, point: Point, victim: Victim, trace: (step: string) => void): Promise<void> {
    const { name, upstream, login } = upstreams[index]!;
    const user = `crash-user-${index + 1}`;
    const crash = async () => {
      trace(`kill the ${victim}`);
      await processOf(victim).kill();
      await processOf(victim).start();
      trace(`${victim} started again`);
    };

    const clientId = await registerClient(gateway.url, [redirectUri], `Crash matrix client ${index + 1}`);
    const pkce = createPkce();
    const state = `state-${index + 1}`;
    const driver = new ConsentDriver(gateway.url);
    const { uid, csrfToken } = await driver.start(authorizationUrl(gateway.url, { clientId, redirectUri, pkce, state }));
    flowIds[index] = uid;
    trace('authorized');
    if (point === 'authorize') await crash();

    const identity = await patiently('identity', () => driver.post(uid, 'identity', { userId: user }));
    expect(identity.status, JSON.stringify(identity.body)).toBe(200);
    trace('signed in');
    if (point === 'identity') await crash();

    const connect = await patiently('connect', () =>
      driver.request(`/interaction/${uid}/connect`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': csrfToken },
        body: JSON.stringify({ upstream: name }),
      }),
    );
    expect(connect.status, connect.body).toBe(200);
    const callbackUrl = await upstream.completeAuthorization((JSON.parse(connect.body) as { redirectTo: string }).redirectTo);
    expect(callbackUrl.pathname).toBe('/oauth/upstream/callback');
    trace('authorized at the upstream');
    const loadCallback = () => patiently('callback', () => driver.request(callbackUrl.href));

    let callback: HttpResult | Error;
    if (point === 'callback' || point === 'exchange') {
      // Before the exchange: the activity waits to read its earlier result. After it: to write the tokens.
      const lock = point === 'callback' ? await lockTable(storeUrl, 'exchange_results', 'ACCESS EXCLUSIVE') : await lockTable(storeUrl, 'upstream_tokens', 'EXCLUSIVE');
      try {
        const answered = settle(driver.request(callbackUrl.href));
        await until(`the exchange activity blocked on the store (${point})`, async () => (await lock.waiters()) > 0);
        trace('exchange activity blocked on the store');
        expect(upstream.counters.codeExchanges).toBe(point === 'callback' ? 0 : 1);
        if (point === 'exchange') {
          // The answer is kept (sealed) where a retried attempt looks first. (Before the exchange the
          // test's own lock keeps that table from being read.)
          const stateHash = createHash('sha256').update(callbackUrl.searchParams.get('state') ?? '').digest('base64url');
          expect(await store.getExchangeResult(`exchange:${uid}:${name}:${stateHash}`)).toBeDefined();
        }
        expect(await store.getUpstreamTokens(user, name)).toBeUndefined();
        trace(`kill the ${victim}`);
        await processOf(victim).kill();
        // The killed worker's statement must not run once the lock goes: PostgreSQL drops it first.
        if (victim === 'worker') await until("PostgreSQL dropped the killed worker's statement", async () => (await lock.waiters()) === 0, 10_000);
        await lock.release();
        await processOf(victim).start();
        trace(`${victim} started again`);
        callback = await answered;
        trace(`first callback request: ${callback instanceof Error ? callback.message : callback.status}`);
      } finally {
        await lock.release();
      }
      // A browser whose request was dropped, or answered "try again", loads the page again.
      if (callback instanceof Error || callback.status === 503) callback = await loadCallback();
    } else {
      callback = await loadCallback();
    }
    trace(`callback answered ${callback.status}`);
    expect(callback.status, callback.body.slice(0, 1000)).toBe(302);
    expect(callback.location?.pathname).toBe(`/interaction/${uid}`);
    const afterCallback = await patiently('state', () => driver.state(uid));
    expect(afterCallback.status, JSON.stringify(afterCallback.body)).toBe(200);
    expect(afterCallback.body.upstreams.find((candidate) => candidate.name === name)?.status).toBe('connected');

    const services = await patiently('services', () => driver.post(uid, 'services', { upstreams: [name] }));
    expect(services.status, JSON.stringify(services.body)).toBe(200);
    const decided = await patiently('decision', () => driver.post(uid, 'decision', { decision: 'approve' }));
    expect(decided.status, JSON.stringify(decided.body)).toBe(200);
    expect(decided.body.redirectTo).toBeTruthy();
    trace('approved');
    if (point === 'approve') await crash();

    const back = await driver.followToClient(decided.body.redirectTo!);
    expect(back.searchParams.get('error'), back.href).toBeNull();
    expect(back.searchParams.get('state')).toBe(state);
    const token = await postForm(gateway.url, '/token', {
      grant_type: 'authorization_code',
      code: back.searchParams.get('code') ?? '',
      code_verifier: pkce.verifier,
      redirect_uri: redirectUri,
      client_id: clientId,
      resource: `${gateway.url}/mcp`,
    });
    expect(token.status, JSON.stringify(token.body)).toBe(200);
    trace('client has its token');
    const mcp = new McpClient({ name: 'crash-matrix', version: '1.0.0' });
    await mcp.connect(new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token.body.access_token}` } } }));
    try {
      expect((await mcp.callTool({ name: `${name}__whoami`, arguments: {} })).content).toEqual([{ type: 'text', text: login }]);
    } finally {
      await mcp.close();
    }
    trace('tool call answered');

    // Exactly one code exchange, no failed token request, one token row, one grant, one consent.
    expect(upstream.counters.codeExchanges).toBe(1);
    expect(upstream.counters.failedTokenRequests).toBe(0);
    const tokens = await store.listUpstreamTokens(user);
    expect(tokens.map((row) => [row.upstream, row.status])).toEqual([[name, 'connected']]);
    expect(await store.oauth.listGrantIds(user, clientId, Math.floor(Date.now() / 1000))).toHaveLength(1);
    expect((await store.getConsent(user, clientId))?.upstreams).toEqual([name]);
    await withTemporal(async (client) => {
      expect(await client.workflow.getHandle(`consent:${uid}`).result()).toMatchObject({ kind: 'approved', userId: user, upstreams: [name] });
      const grantId = `grant:${encodeURIComponent(user)}:${encodeURIComponent(name)}`;
      let runs: string[] = [];
      await until(`the grant workflow of ${user} at ${name}`, async () => {
        runs = [];
        for await (const execution of client.workflow.list({ query: `WorkflowId = '${grantId}'` })) runs.push(execution.status.name);
        return runs.length > 0;
      });
      expect(runs).toEqual(['RUNNING']);
    });
  }

  /** What a failed case leaves to read: its steps, the processes' output, the flow's history. */
  async function report(index: number, steps: string[]): Promise<string> {
    const lines = [`steps:\n  ${steps.join('\n  ')}`];
    const flowId = flowIds[index];
    if (flowId) {
      const history = await withTemporal(async (client) => {
        const handle = client.workflow.getHandle(`consent:${flowId}`);
        const events = (await handle.fetchHistory()).events ?? [];
        const pending = (await handle.describe()).raw.pendingActivities ?? [];
        return [
          `history: ${events.map((event) => String(event.eventType)).join(' ')}`,
          `pending activities: ${pending.map((activity) => `${activity.activityType?.name} attempt ${activity.attempt} ${activity.lastFailure?.message ?? ''}`).join('; ') || 'none'}`,
        ];
      }).catch((error: unknown) => [`history unavailable: ${String(error)}`]);
      lines.push(...history);
    }
    lines.push(`--- web output ---\n${gateway.web.output().slice(-4000)}`, `--- worker output ---\n${gateway.worker.output().slice(-4000)}`);
    return lines.join('\n');
  }

  for (const [index, { point, victim }] of cases.entries()) {
    it(`kill the ${victim} ${pointNames[point]}`, async () => {
      const started = Date.now();
      currentCase = `${victim} ${point}`;
      const steps: string[] = [];
      const trace = (step: string) => steps.push(`+${Date.now() - started} ms ${step}`);
      let timer: NodeJS.Timeout | undefined;
      try {
        // Bounded below the test's timeout, so that a case that hangs is reported like one that fails.
        await Promise.race([
          runCase(index, point, victim, trace),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error('the case did not finish in 150 s')), 150_000);
          }),
        ]);
        survived.push(`${victim} ${point}`);
      } catch (error) {
        failed.push(`${victim} ${point}: ${(error as Error).message.split('\n')[0]}`);
        console.log(`${victim} ${point} failed\n${await report(index, steps)}`);
        throw error;
      } finally {
        clearTimeout(timer);
        // A failed case leaves no process down for the next one.
        for (const process of [gateway.temporal, gateway.web, gateway.worker]) if (!process.running) await process.start();
      }
    }, 200_000);
  }

  it('goes on with a callback loaded again by the same browser, and refuses it with another code or in another browser', async () => {
    const { name, upstream } = replay;
    const clientId = await registerClient(gateway.url, [redirectUri], 'Crash matrix replay client');
    const driver = new ConsentDriver(gateway.url);
    const { uid, csrfToken } = await driver.start(authorizationUrl(gateway.url, { clientId, redirectUri, pkce: createPkce() }));
    expect((await patiently('identity', () => driver.post(uid, 'identity', { userId: 'crash-replay' }))).status).toBe(200);
    const connect = await driver.request(`/interaction/${uid}/connect`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrfToken },
      body: JSON.stringify({ upstream: name }),
    });
    expect(connect.status, connect.body).toBe(200);
    const callbackUrl = await upstream.completeAuthorization((JSON.parse(connect.body) as { redirectTo: string }).redirectTo);
    expect((await driver.request(callbackUrl.href)).status).toBe(302);
    // Loaded again: the same answer, from the same update; no second exchange.
    const again = await driver.request(callbackUrl.href);
    expect(again.status, again.body.slice(0, 500)).toBe(302);
    expect(again.location?.pathname).toBe(`/interaction/${uid}`);
    const forged = new URL(callbackUrl);
    forged.searchParams.set('code', `${callbackUrl.searchParams.get('code')}x`);
    const refused = await driver.request(forged.href);
    expect(refused.status).toBe(400);
    expect(refused.body).toContain('already used');
    const elsewhere = await new ConsentDriver(gateway.url).request(callbackUrl.href);
    expect(elsewhere.status).toBe(403);
    expect(upstream.counters.codeExchanges).toBe(1);
    expect(upstream.counters.failedTokenRequests).toBe(0);
    const audit = await store.queryAudit({ userId: 'crash-replay', kind: 'upstream.connected', limit: 10 });
    expect(audit).toHaveLength(1);
  });

  it('survives every case', () => {
    console.log(`crash matrix: ${survived.length}/${cases.length} survived`);
    expect(failed).toEqual([]);
    expect(survived).toHaveLength(cases.length);
    // No late duplicate exchange either: each upstream saw its one.
    expect(upstreams.map(({ upstream }) => upstream.counters.codeExchanges)).toEqual(upstreams.map(() => 1));
  });
});

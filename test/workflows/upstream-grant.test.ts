import { randomBytes } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UpstreamConfig } from '../../server/config.js';
import { TokenCipher } from '../../server/crypto/token-cipher.js';
import { requestUpstreamRefresh, signalUpstreamConnected } from '../../server/temporal/client.js';
import { disconnect, grantState, refreshNow, type UpstreamGrantOutcome, upstreamGrantWorkflowId } from '../../workflows/upstream-grant/messages.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { openTemporalTestEnv, temporalUnavailable, type TemporalTestEnv } from '../helpers/temporal.js';
import { connectNotionAccount, notionUpstreamConfig } from '../helpers/upstream-account.js';

const redirectUri = 'http://127.0.0.1:9/oauth/upstream/callback';

async function until<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** When each refresh of the workflow's history was scheduled (ms since the epoch), in order. */
async function refreshesScheduledAt(handle: WorkflowHandle): Promise<number[]> {
  const events = (await handle.fetchHistory()).events ?? [];
  return events
    .filter((event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'refreshUpstreamToken')
    .map((event) => Number(event.eventTime!.seconds) * 1000 + Math.floor((event.eventTime!.nanos ?? 0) / 1e6));
}

describe.skipIf(temporalUnavailable)('upstreamGrant on the dev server', () => {
  let env: TemporalTestEnv;
  let worker: Worker;
  let running: Promise<void>;
  /** Access tokens live 3 s here, so the workflow's own timer refreshes them. */
  let shortLived: FakeUpstream;
  /** Access tokens live an hour here: only `refreshNow` refreshes them. */
  let longLived: FakeUpstream;
  let shortConfig: UpstreamConfig;
  let longConfig: UpstreamConfig;
  const cipher = new TokenCipher(randomBytes(32));

  beforeAll(async () => {
    shortLived = await startFakeUpstream({ preset: 'notion', accessTokenTtlSeconds: 3 });
    longLived = await startFakeUpstream({ preset: 'notion', accessTokenTtlSeconds: 3600 });
    shortConfig = notionUpstreamConfig(shortLived, 'notion-short');
    longConfig = notionUpstreamConfig(longLived, 'notion');
    env = await openTemporalTestEnv();
    worker = await env.createWorker({ cipher, upstreams: [shortConfig, longConfig], redirectUri });
    running = worker.run();
  });

  afterAll(async () => {
    worker?.shutdown();
    await running;
    await env?.close();
    await shortLived?.close();
    await longLived?.close();
  });

  /** Connects the user and starts the grant workflow the way the callback route does. */
  async function connect(userId: string, upstream: UpstreamConfig, login: string, extra: { continueAsNewAfterEvents?: number } = {}) {
    const notion = upstream === shortConfig ? shortLived : longLived;
    await connectNotionAccount({ store: env.store, cipher, notion, upstream, redirectUri, userId, login });
    const tokens = (await env.store.getUpstreamTokens(userId, upstream.name))!;
    const handle = await signalUpstreamConnected(env.client, env.taskQueue, {
      userId,
      upstream: upstream.name,
      version: tokens.version,
      expiresAt: tokens.expiresAt,
      refreshable: tokens.refreshToken !== null,
      ...extra,
    });
    return { handle, tokens };
  }

  function plain(userId: string, upstream: string, sealed: { accessToken: string; refreshToken: string | null }) {
    return [
      cipher.open(sealed.accessToken, `upstream_tokens:${userId}:${upstream}:access`),
      cipher.open(sealed.refreshToken!, `upstream_tokens:${userId}:${upstream}:refresh`),
    ];
  }

  it('refreshes the token before it expires, on its own, again and again', async () => {
    const { handle, tokens: first } = await connect('ann', shortConfig, 'notion-ann');
    expect(handle.workflowId).toBe('grant:ann:notion-short');
    const second = await until(async () => {
      const tokens = await env.store.getUpstreamTokens('ann', 'notion-short');
      return tokens && tokens.version >= 2 ? tokens : undefined;
    }, 'the first refresh');
    // The workflow's own timer starts each refresh before the token expires (when the new token is
    // stored depends on how busy the machine is; when the refresh starts does not).
    const [firstRefresh] = await refreshesScheduledAt(handle);
    expect(firstRefresh).toBeLessThan(first.expiresAt! * 1000);
    expect(second.status).toBe('connected');
    expect(plain('ann', 'notion-short', second)[0]).not.toBe(plain('ann', 'notion-short', first)[0]);
    const third = await until(async () => {
      const tokens = await env.store.getUpstreamTokens('ann', 'notion-short');
      return tokens && tokens.version >= 3 ? tokens : undefined;
    }, 'the second refresh');
    expect((await refreshesScheduledAt(handle))[1]).toBeLessThan(second.expiresAt! * 1000);
    const state = await handle.query(grantState);
    expect(state).toMatchObject({ status: 'connected', userId: 'ann', upstream: 'notion-short' });
    expect(state.refreshes).toBeGreaterThanOrEqual(2);
    const metadata = await handle.query<{ currentDetails: string }>('__temporal_workflow_metadata');
    expect(metadata.currentDetails).toMatch(/^Connected; next refresh at \d{4}-/);
    await handle.signal(disconnect);
    await handle.result();
  });

  it('answers 20 concurrent refreshNow calls that saw the same version with one refresh at the upstream', async () => {
    const { handle, tokens } = await connect('ben', longConfig, 'notion-ben');
    longLived.resetCounters();
    const results = await Promise.all(
      Array.from({ length: 20 }, () => handle.executeUpdate(refreshNow, { args: [{ reason: 'test', seenAccessTokenVersion: tokens.version }] })),
    );
    const events = (await handle.fetchHistory()).events ?? [];
    const scheduled = events.map((event) => event.activityTaskScheduledEventAttributes?.activityType?.name).filter(Boolean);
    expect(scheduled).toEqual(['refreshUpstreamToken']);
    expect(longLived.counters.refreshGrants).toBe(1);
    expect(longLived.counters.failedTokenRequests).toBe(0);
    expect(results.map((result) => [result.version, result.refreshed, result.status])).toEqual(Array(20).fill([tokens.version + 1, true, 'connected']));
    expect((await env.store.getUpstreamTokens('ben', 'notion'))?.version).toBe(tokens.version + 1);
    // A caller that saw an older version than the stored one gets the newer token without a refresh.
    const late = await handle.executeUpdate(refreshNow, { args: [{ reason: 'late', seenAccessTokenVersion: tokens.version }] });
    expect(late).toMatchObject({ version: tokens.version + 1, refreshed: true });
    expect(longLived.counters.refreshGrants).toBe(1);
    await handle.signal(disconnect);
    await handle.result();
  });

  it('marks the grant needs_reconnect when the upstream answers invalid_grant, and a reconnect brings it back', async () => {
    const { handle, tokens } = await connect('cat', longConfig, 'notion-cat');
    expect(await longLived.revokeAllTokensFor('notion-cat')).toBeGreaterThan(0);
    const result = await handle.executeUpdate(refreshNow, { args: [{ reason: 'test', seenAccessTokenVersion: tokens.version }] });
    expect(result).toMatchObject({ status: 'needs_reconnect', refreshed: false, reason: 'invalid_grant', version: tokens.version });
    expect((await env.store.getUpstreamTokens('cat', 'notion'))?.status).toBe('needs_reconnect');
    expect(await handle.query(grantState)).toMatchObject({ status: 'needs_reconnect', reason: 'invalid_grant' });
    const metadata = await handle.query<{ currentDetails: string }>('__temporal_workflow_metadata');
    expect(metadata.currentDetails).toContain('Needs reconnect: invalid\\_grant');
    const query = `ConsentUserId = "cat" AND ConsentUpstreams = "notion" AND UpstreamGrantStatus = "needs_reconnect"`;
    const listed = await until(async () => {
      const ids: string[] = [];
      for await (const execution of env.client.workflow.list({ query })) ids.push(execution.workflowId);
      return ids.length > 0 ? ids : undefined;
    }, 'the search attributes');
    expect(listed).toEqual(['grant:cat:notion']);

    await connect('cat', longConfig, 'notion-cat');
    const state = await until(async () => {
      const current = await handle.query(grantState);
      return current.status === 'connected' ? current : undefined;
    }, 'the reconnect');
    expect(state).toMatchObject({ status: 'connected', reason: null, version: tokens.version + 1 });
    expect((await env.store.getUpstreamTokens('cat', 'notion'))?.status).toBe('connected');
    await handle.signal(disconnect);
    await handle.result();
  });

  it('on disconnect revokes at the upstream, deletes the tokens and completes', async () => {
    const { handle, tokens } = await connect('dan', longConfig, 'notion-dan');
    const [, refreshToken] = plain('dan', 'notion', tokens);
    longLived.resetCounters();
    await handle.signal(disconnect);
    const outcome: UpstreamGrantOutcome = await handle.result();
    expect(outcome).toEqual({ status: 'disconnected', revoked: true });
    expect(longLived.counters.revocations).toBe(1);
    expect(await env.store.getUpstreamTokens('dan', 'notion')).toBeUndefined();
    expect((await handle.describe()).status.name).toBe('COMPLETED');
    // The revoked refresh token no longer works at the upstream.
    const refused = await fetch(longLived.tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken!, client_id: (await env.store.getUpstreamClient('notion'))!.clientId }),
    });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: string }).error).toBe('invalid_grant');
  });

  it('continues as new when its history grows long, keeping the token version and refresh count', async () => {
    const { handle, tokens } = await connect('fay', longConfig, 'notion-fay', { continueAsNewAfterEvents: 30 });
    const firstRun = (await handle.describe()).runId;
    let version = tokens.version;
    for (let i = 0; i < 6; i += 1) {
      const result = await handle.executeUpdate(refreshNow, { args: [{ reason: `round ${i}`, seenAccessTokenVersion: version }] });
      expect(result).toMatchObject({ refreshed: true, version: version + 1 });
      version = result.version;
    }
    const latest = await until(async () => {
      const described = await handle.describe();
      return described.runId !== firstRun ? described : undefined;
    }, 'a new run');
    expect(latest.status.name).toBe('RUNNING');
    expect(await handle.query(grantState)).toMatchObject({ status: 'connected', version, refreshes: 6 });
    expect((await env.store.getUpstreamTokens('fay', 'notion'))?.version).toBe(version);
    await handle.signal(disconnect);
    expect(await handle.result()).toEqual({ status: 'disconnected', revoked: true });
  });

  it('keeps every token, plain or sealed, out of the workflow history', async () => {
    const { handle, tokens: first } = await connect('eve', longConfig, 'notion-eve');
    await handle.executeUpdate(refreshNow, { args: [{ reason: 'test', seenAccessTokenVersion: first.version }] });
    const second = (await env.store.getUpstreamTokens('eve', 'notion'))!;
    expect(second.version).toBe(first.version + 1);
    await handle.signal(disconnect);
    await handle.result();
    const secrets = [
      ...plain('eve', 'notion', first),
      ...plain('eve', 'notion', second),
      first.accessToken,
      first.refreshToken!,
      second.accessToken,
      second.refreshToken!,
    ];
    const history = JSON.stringify(await handle.fetchHistory());
    const decoded = history.replace(/"data":"([A-Za-z0-9+/=]+)"/g, (_match, data: string) => Buffer.from(data, 'base64').toString('utf8'));
    expect(decoded).toContain('refreshUpstreamToken');
    expect(decoded).toContain('"seenAccessTokenVersion":1');
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(20);
      expect(decoded.includes(secret)).toBe(false);
    }
    expect(upstreamGrantWorkflowId('eve', 'notion')).toBe(handle.workflowId);
  });
});

describe.skipIf(temporalUnavailable)('upstreamGrant with its workflow tasks and activity tasks on separate workers', () => {
  let env: TemporalTestEnv;
  let upstream: FakeUpstream;
  let config: UpstreamConfig;
  let activities: Worker;
  let activitiesRunning: Promise<void>;
  const cipher = new TokenCipher(randomBytes(32));

  beforeAll(async () => {
    upstream = await startFakeUpstream({ preset: 'notion', accessTokenTtlSeconds: 3600 });
    config = notionUpstreamConfig(upstream, 'notion');
    env = await openTemporalTestEnv();
    activities = await env.createWorker({ cipher, upstreams: [config], redirectUri }, { only: 'activities' });
    activitiesRunning = activities.run();
  });

  afterAll(async () => {
    activities?.shutdown();
    await activitiesRunning;
    await env?.close();
    await upstream?.close();
  });

  it('refreshes nothing more when its refresh timer fires in the workflow task where a requested refresh ended', async () => {
    await connectNotionAccount({ store: env.store, cipher, notion: upstream, upstream: config, redirectUri, userId: 'gus', login: 'notion-gus' });
    const tokens = (await env.store.getUpstreamTokens('gus', 'notion'))!;
    upstream.resetCounters();
    let workflows = await env.createWorker({ cipher, upstreams: [config], redirectUri }, { only: 'workflows' });
    let workflowsRunning = workflows.run();
    const held = upstream.holdTokenRequests();
    // As `/mcp` asks for a grant without a workflow: the workflow starts taking the token for
    // expired, so its refresh timer is due at once and fires again and again while the refresh runs.
    const answer = requestUpstreamRefresh(
      env.client,
      env.taskQueue,
      { userId: 'gus', upstream: 'notion', version: tokens.version, expiresAt: Math.floor(Date.now() / 1000) - 60, refreshable: true },
      { reason: 'expired before use', seenAccessTokenVersion: tokens.version },
    );
    await held.arrived;
    // With no workflow worker, the timer's firing and the refresh's end wait for one workflow task together.
    workflows.shutdown();
    await workflowsRunning;
    const handle = env.client.workflow.getHandle(upstreamGrantWorkflowId('gus', 'notion'));
    const events = async () => (await handle.fetchHistory()).events ?? [];
    await until(async () => {
      const history = await events();
      const started = history.filter((event) => event.timerStartedEventAttributes).at(-1)?.timerStartedEventAttributes?.timerId;
      return started && history.some((event) => event.timerFiredEventAttributes?.timerId === started) ? true : undefined;
    }, 'the refresh timer to fire');
    held.release();
    await until(async () => ((await events()).some((event) => event.activityTaskCompletedEventAttributes) ? true : undefined), 'the refresh to end');
    workflows = await env.createWorker({ cipher, upstreams: [config], redirectUri }, { only: 'workflows' });
    workflowsRunning = workflows.run();
    expect(await answer).toMatchObject({ refreshed: true, version: tokens.version + 1, refreshes: 1 });

    const history = await events();
    const fired = history.findLastIndex((event) => event.timerFiredEventAttributes);
    const completed = history.findIndex((event) => event.activityTaskCompletedEventAttributes);
    // Both reached the workflow in the same task.
    expect(history.slice(Math.min(fired, completed), Math.max(fired, completed)).some((event) => event.workflowTaskStartedEventAttributes)).toBe(false);
    const scheduled = history.filter((event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'refreshUpstreamToken');
    expect(scheduled).toHaveLength(1);
    expect(await handle.query(grantState)).toMatchObject({ status: 'connected', version: tokens.version + 1, refreshes: 1 });
    expect(upstream.counters.refreshGrants).toBe(1);
    expect((await env.store.getUpstreamTokens('gus', 'notion'))?.version).toBe(tokens.version + 1);
    await handle.signal(disconnect);
    await handle.result();
    workflows.shutdown();
    await workflowsRunning;
  });
});

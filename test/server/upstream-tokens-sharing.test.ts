import { randomBytes } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UpstreamConfig } from '../../server/config.js';
import { TokenCipher } from '../../server/crypto/token-cipher.js';
import { createLogger } from '../../server/log.js';
import { signalUpstreamConnected } from '../../server/temporal/client.js';
import { upstreamTokens } from '../../server/upstream-tokens.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { openTemporalTestEnv, temporalUnavailable, type TemporalTestEnv } from '../helpers/temporal.js';
import { connectNotionAccount, notionUpstreamConfig } from '../helpers/upstream-account.js';

const redirectUri = 'http://127.0.0.1:9/oauth/upstream/callback';
const callers = 20;

/** How many updates named `name` the workflow accepted. */
async function acceptedUpdates(handle: WorkflowHandle, name: string): Promise<number> {
  const { events } = await handle.fetchHistory();
  return (events ?? []).filter((event) => event.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input?.name === name).length;
}

async function until(probe: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Many requests of one user that meet the same refused token ask the user's grant workflow once
 * between them. The grant workflow's worker starts only once every caller has asked, so each of
 * them finds the request of the others still unanswered.
 */
describe.skipIf(temporalUnavailable)('asks of a grant workflow, shared by the callers that found the same token', () => {
  let env: TemporalTestEnv;
  let notion: FakeUpstream;
  let upstream: UpstreamConfig;
  const cipher = new TokenCipher(randomBytes(32));

  beforeAll(async () => {
    notion = await startFakeUpstream({ preset: 'notion', accessTokenTtlSeconds: 3600 });
    upstream = notionUpstreamConfig(notion);
    env = await openTemporalTestEnv();
  });

  afterAll(async () => {
    await env?.close();
    await notion?.close();
  });

  /** A connected user whose grant workflow is started but has no worker yet, and the headers a call to the upstream was sent with. */
  async function connectedUser(userId: string) {
    await connectNotionAccount({ store: env.store, cipher, notion, upstream, redirectUri, userId, login: `notion-${userId}` });
    const stored = (await env.store.getUpstreamTokens(userId, upstream.name))!;
    const handle = await signalUpstreamConnected(env.client, env.taskQueue, {
      userId,
      upstream: upstream.name,
      version: stored.version,
      expiresAt: stored.expiresAt,
      refreshable: stored.refreshToken !== null,
    });
    // The same store, counting the token reads that finished: each caller reads once before it asks.
    let reads = 0;
    const store = new Proxy(env.store, {
      get(target, property) {
        const value: unknown = Reflect.get(target, property, target);
        if (typeof value !== 'function') return value;
        if (property !== 'getUpstreamTokens') return value.bind(target);
        return async (...args: unknown[]) => {
          try {
            return await value.apply(target, args);
          } finally {
            reads += 1;
          }
        };
      },
    });
    const tokens = upstreamTokens({
      store,
      cipher,
      upstreams: [upstream],
      temporal: { client: env.client, taskQueue: env.taskQueue, log: createLogger('error'), requestTimeoutMs: 60_000 },
      publicUrl: 'http://127.0.0.1:9',
    });
    const target = { name: upstream.name, displayName: 'Notion', url: upstream.mcpUrl };
    const caller = { userId, clientId: 'client-1', upstreams: [target] };
    const sent = await tokens.headers(caller, target);
    return { handle, tokens, target, caller, sent, reads: () => reads };
  }

  /** Runs `asks` with the workflow's worker stopped until each of them read the token, then with the worker. */
  async function askAllThenServe<T>(user: { reads: () => number }, asks: () => Promise<T>[], check: (answers: T[]) => Promise<void>): Promise<void> {
    const before = user.reads();
    const pending = asks();
    await until(() => user.reads() - before >= callers, `${callers} token reads`);
    // What a caller does after its read, up to its ask, takes no more than this turn.
    await new Promise((resolve) => setImmediate(resolve));
    const worker = await env.createWorker({ cipher, upstreams: [upstream], redirectUri });
    await worker.runUntil(async () => check(await Promise.all(pending)));
  }

  it(`sends one markNeedsReconnect for ${callers} calls whose retry with the same token was refused`, async () => {
    const user = await connectedUser('rita');
    await askAllThenServe(
      user,
      () => Array.from({ length: callers }, () => user.tokens.unauthorized(user.caller, user.target, user.sent, true)),
      async (answers) => {
        expect(answers).toEqual(Array(callers).fill(false));
        expect(await acceptedUpdates(user.handle, 'markNeedsReconnect')).toBe(1);
      },
    );
    expect((await env.store.getUpstreamTokens('rita', upstream.name))?.status).toBe('needs_reconnect');
  }, 120_000);

  it(`sends one requireScopes for ${callers} calls refused for the same missing scope, and answers each with the connect link`, async () => {
    const user = await connectedUser('saul');
    await askAllThenServe(
      user,
      () =>
        Array.from({ length: callers }, () =>
          user.tokens.insufficientScope(user.caller, user.target, user.sent, ['pages:write']).then(
            () => 'retry',
            (error: unknown) => (error as { code?: number }).code,
          ),
        ),
      async (answers) => {
        // Each call is answered with the URL elicitation that authorizes the accumulated scopes.
        expect(answers).toEqual(Array(callers).fill(-32042));
        expect(await acceptedUpdates(user.handle, 'requireScopes')).toBe(1);
      },
    );
  }, 120_000);
});

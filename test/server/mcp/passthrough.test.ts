import { randomBytes } from 'node:crypto';

import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createLogger } from '../../../server/log.js';
import { createPassthroughEndpoint } from '../../../server/mcp/passthrough.js';
import type { McpCaller } from '../../../server/mcp/types.js';
import { startConformanceUpstream, type ConformanceUpstream } from '../../helpers/conformance-upstream.js';
import { serveForThisTest } from './aggregate-harness.js';

let fixture: ConformanceUpstream;

beforeAll(async () => {
  fixture = await startConformanceUpstream();
});

afterAll(async () => {
  await fixture?.close();
});

/** `/mcp/<fixture>` with the given session keys, for alice. */
async function startPassthrough(sessionKeys: Buffer[]): Promise<string> {
  const endpoint = createPassthroughEndpoint({ log: createLogger('error', () => undefined), upstreamHeaders: async () => ({}), sessionKeys, maxBodyBytes: 1024 * 1024 });
  const app = new Koa();
  app.silent = true;
  app.use(async (ctx, next) => {
    ctx.state['caller'] = { userId: 'alice', clientId: 'client-a', upstreams: [{ name: 'fixture', displayName: 'Fixture', url: fixture.url }] } satisfies McpCaller;
    await endpoint.middleware(ctx, next);
  });
  return serveForThisTest(app, () => endpoint.close());
}

const post = (url: string, body: object, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers }, body: JSON.stringify(body) });

describe('/mcp/<upstream> session ids across a key rotation', () => {
  it('keeps a session opened under the old key working once a new key signs, and refuses it once the old key is gone', async () => {
    const [oldKey, newKey] = [randomBytes(32), randomBytes(32)];
    const before = await startPassthrough([oldKey]);
    const initialize = await post(before, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
    const sessionId = initialize.headers.get('mcp-session-id')!;
    await initialize.text();
    const ping = (url: string) => post(url, { jsonrpc: '2.0', id: 2, method: 'ping' }, { 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' });

    const during = await startPassthrough([newKey, oldKey]);
    const kept = await ping(during);
    expect(kept.status).toBe(200);
    await kept.text();
    const after = await startPassthrough([newKey]);
    const refused = await ping(after);
    expect(refused.status).toBe(404);
    expect(await refused.json()).toEqual({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: 2 });
  });
});

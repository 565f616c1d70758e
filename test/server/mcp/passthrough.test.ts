import { randomBytes } from 'node:crypto';

import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createLogger } from '../../../server/log.js';
import { createPassthroughEndpoint } from '../../../server/mcp/passthrough.js';
import type { McpCaller } from '../../../server/mcp/types.js';
import { startConformanceUpstream, type ConformanceUpstream } from '../../helpers/conformance-upstream.js';
import { afterThisTest, serveForThisTest } from './aggregate-harness.js';

let fixture: ConformanceUpstream;

beforeAll(async () => {
  fixture = await startConformanceUpstream();
});

afterAll(async () => {
  await fixture?.close();
});

/** `/mcp/<upstream>` in front of the upstream at `upstreamUrl`, with the given session keys, for alice. */
async function servePassthrough(upstreamUrl: string, sessionKeys: Buffer[] = [randomBytes(32)]): Promise<string> {
  const endpoint = createPassthroughEndpoint({ log: createLogger('error', () => undefined), upstreamHeaders: async () => ({}), sessionKeys, maxBodyBytes: 1024 * 1024 });
  const app = new Koa();
  app.silent = true;
  app.use(async (ctx, next) => {
    ctx.state['caller'] = { userId: 'alice', clientId: 'client-a', upstreams: [{ name: 'fixture', displayName: 'Fixture', url: upstreamUrl }] } satisfies McpCaller;
    await endpoint.middleware(ctx, next);
  });
  return serveForThisTest(app, () => endpoint.close());
}

/** `/mcp/<fixture>` with the given session keys, for alice. */
const startPassthrough = (sessionKeys: Buffer[]) => servePassthrough(fixture.url, sessionKeys);

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

describe('/mcp/<upstream> answers as the upstream sent them', () => {
  const big = 'x'.repeat(3 * 1024 * 1024);
  let raw: import('node:http').Server;
  let rawUrl = '';
  let releaseStream: () => void = () => undefined;

  beforeAll(async () => {
    const { createServer } = await import('node:http');
    raw = createServer((req, res) => {
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (text += chunk));
      req.on('end', () => {
        const { id } = JSON.parse(text) as { id: number };
        if (id === 5) {
          // A stream opened with no event yet: its first comes when the test releases it.
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.flushHeaders();
          releaseStream = () => res.end(`data: ${JSON.stringify({ jsonrpc: '2.0', id, result: {} })}\n\n`);
          return;
        }
        if (id === 4) {
          // An event stream that ends with its one answer, sent whole.
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.end(`data: ${JSON.stringify({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: 'ended' }] } })}\n\n`);
          return;
        }
        if (id === 3) {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write(`data: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1 } })}\n\n`);
          releaseStream = () => res.end(`data: ${JSON.stringify({ jsonrpc: '2.0', id, result: {} })}\n\n`);
          return;
        }
        // Chunked, in pieces: the gateway cannot take the length from the upstream.
        const answer = JSON.stringify({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: id === 2 ? big : 'small' }] } });
        res.writeHead(200, { 'content-type': 'application/json' });
        const cut = Math.floor(answer.length / 2);
        res.write(answer.slice(0, cut));
        setImmediate(() => res.end(answer.slice(cut)));
      });
    });
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
    rawUrl = `http://127.0.0.1:${(raw.address() as import('node:net').AddressInfo).port}/mcp`;
  });
  afterAll(async () => {
    raw?.closeAllConnections();
    await new Promise((resolve) => raw?.close(resolve));
  });

  const startRawPassthrough = () => servePassthrough(rawUrl);

  const call = (url: string, id: number) =>
    post(url, { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: {} } }, { 'mcp-protocol-version': '2025-11-25' });

  it('sends a JSON answer whole with its length, streams one over 1 MiB through intact, and an event stream as it comes', async () => {
    const url = await startRawPassthrough();
    const small = await call(url, 1);
    const smallText = await small.text();
    expect(small.headers.get('content-length')).toBe(String(Buffer.byteLength(smallText)));
    expect(JSON.parse(smallText)).toMatchObject({ id: 1, result: { content: [{ text: 'small' }] } });

    const large = await call(url, 2);
    expect(large.headers.get('content-length')).toBeNull();
    const largeAnswer = (await large.json()) as { result: { content: Array<{ text: string }> } };
    expect(largeAnswer.result.content[0]!.text).toBe(big);

    const stream = await call(url, 3);
    expect(stream.headers.get('content-type')).toBe('text/event-stream');
    const reader = stream.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toContain('notifications/progress');
    releaseStream();
    let rest = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(rest).toContain('"id":3');
  });

  it('tells the client its event stream is open before the first event comes', async () => {
    const url = await startRawPassthrough();
    // Resolves with the headers alone: no event has been sent yet.
    const opened = await call(url, 5);
    expect(opened.status).toBe(200);
    expect(opened.headers.get('content-type')).toBe('text/event-stream');
    releaseStream();
    expect(await opened.text()).toContain('"id":5');
  });

  it('sends an event stream that came whole, already ended, in one response of known length', async () => {
    const url = await startRawPassthrough();
    const ended = await call(url, 4);
    expect(ended.headers.get('content-type')).toBe('text/event-stream');
    const text = await ended.text();
    expect(ended.headers.get('content-length')).toBe(String(Buffer.byteLength(text)));
    expect(text).toBe(`data: ${JSON.stringify({ jsonrpc: '2.0', id: 4, result: { content: [{ type: 'text', text: 'ended' }] } })}\n\n`);
  });
});

describe("/mcp/<upstream>'s kept-alive connections to its upstream", () => {
  /**
   * An upstream that closes an idle connection after `keepAliveMs` (0: never, announcing nothing),
   * behind `/mcp/<upstream>`; for each connection it accepted, whether the gateway ended it (its
   * FIN came first), once it closed.
   */
  async function startKeepingUpstream(keepAliveMs: number) {
    const { createServer } = await import('node:http');
    const connections: Array<{ closed: Promise<void>; endedByGateway?: boolean }> = [];
    const upstream = createServer((req, res) => {
      req.resume();
      req.once('end', () => {
        const answer = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'kept' }] } });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) });
        res.end(answer);
      });
    });
    upstream.keepAliveTimeout = keepAliveMs;
    upstream.on('connection', (socket) => {
      let peerEnded = false;
      socket.once('end', () => (peerEnded = true));
      const connection: { closed: Promise<void>; endedByGateway?: boolean } = {
        closed: new Promise((resolve) => socket.once('close', () => resolve(void (connection.endedByGateway = peerEnded)))),
      };
      connections.push(connection);
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    afterThisTest(async () => {
      upstream.closeAllConnections();
      await new Promise((resolve) => upstream.close(resolve));
    });
    const url = await servePassthrough(`http://127.0.0.1:${(upstream.address() as import('node:net').AddressInfo).port}/mcp`);
    const callThrice = async () => {
      for (let id = 1; id <= 3; id += 1) {
        const answer = await post(url, { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: {} } }, { 'mcp-protocol-version': '2025-11-25' });
        expect(await answer.json()).toMatchObject({ result: { content: [{ text: 'kept' }] } });
      }
    };
    return { connections, callThrice };
  }

  it('sends one call after another over one connection, and closes it a second before the timeout the upstream announces', async () => {
    // Node's server announces `Keep-Alive: timeout=2` and closes an idle connection after 2 s.
    const { connections, callThrice } = await startKeepingUpstream(2_000);
    await callThrice();
    expect(connections).toHaveLength(1);
    await connections[0]!.closed;
    expect(connections[0]!.endedByGateway).toBe(true);
  });

  it('closes an idle connection itself when the upstream announces no timeout', async () => {
    const { connections, callThrice } = await startKeepingUpstream(0);
    await callThrice();
    expect(connections).toHaveLength(1);
    // The upstream never closes it: only the gateway's own idle timeout can.
    const ended = await Promise.race([connections[0]!.closed.then(() => 'closed'), new Promise((resolve) => setTimeout(() => resolve('still open after 15 s'), 15_000))]);
    expect(ended).toBe('closed');
    expect(connections[0]!.endedByGateway).toBe(true);
  }, 30_000);
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import http, { type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

import { arrivedBody } from '../../../server/mcp/arrived-body.js';

/** A loopback server whose `/whole` answers in one write and whose `/late` sends its body 100 ms after its headers. */
let server: Server;
let base: string;
const connections = new Set<Socket>();

beforeAll(async () => {
  server = http.createServer((req, res) => {
    if (req.url === '/whole') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': 11 });
      res.end('{"whole":1}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': 10 });
    res.flushHeaders();
    setTimeout(() => res.end('{"late":1}'), 100);
  });
  server.on('connection', (socket) => connections.add(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** Resolves with the response to GET `path` once its headers arrived, in the turn after they did (as an awaiting caller sees it). */
function get(path: string, agent: http.Agent): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    http.get(`${base}${path}`, { agent }, (response) => queueMicrotask(() => resolve(response))).once('error', reject);
  });
}

describe('arrivedBody', () => {
  it('takes a body that came whole with its headers, and the connection goes back to the pool as after reading it', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    connections.clear();
    try {
      for (let round = 0; round < 3; round += 1) {
        const response = await get('/whole', agent);
        const ended = new Promise<void>((resolve) => response.once('end', resolve));
        const body = arrivedBody(response);
        expect(body?.toString('utf8')).toBe('{"whole":1}');
        await ended;
      }
      // Each answer ended its stream: all three requests went over one kept-alive connection.
      expect(connections.size).toBe(1);
    } finally {
      agent.destroy();
    }
  });

  it('leaves a body still arriving to the stream events, untouched', async () => {
    const agent = new http.Agent({ keepAlive: true });
    try {
      const response = await get('/late', agent);
      expect(arrivedBody(response)).toBeUndefined();
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      await new Promise((resolve) => response.once('end', resolve));
      expect(text).toBe('{"late":1}');
    } finally {
      agent.destroy();
    }
  });

  it('leaves a body that something already reads', async () => {
    const agent = new http.Agent({ keepAlive: true });
    try {
      const response = await get('/whole', agent);
      let text = '';
      response.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      expect(arrivedBody(response)).toBeUndefined();
      await new Promise((resolve) => response.once('end', resolve));
      expect(text).toBe('{"whole":1}');
    } finally {
      agent.destroy();
    }
  });
});

import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from '@modelcontextprotocol/client';
import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as LegacyTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import Koa from 'koa';
import { afterEach } from 'vitest';

import { createLogger } from '../../../server/log.js';
import { createMcpEndpoint, type McpEndpoint, type McpEndpointOptions, type McpUpstream } from '../../../server/mcp/endpoint.js';

export const MODERN_VERSION = '2026-07-28';

/** A gateway started by {@link startGateway}. */
export interface TestGateway {
  url: string;
  endpoint: McpEndpoint;
  logged: string[];
}

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Runs `cleanup` after the current test, before the ones registered earlier. */
export function afterThisTest(cleanup: () => Promise<void>): void {
  cleanups.push(cleanup);
}

/**
 * A Koa app on loopback serving the aggregate endpoint for whoever `X-Test-User` names (default
 * `alice`), with the upstreams `upstreamsOf` grants that user (and the grant `X-Test-Grant` names, if any).
 */
export async function startGateway(upstreamsOf: (user: string, grant: string) => McpUpstream[], overrides: Partial<McpEndpointOptions> = {}): Promise<TestGateway> {
  const logged: string[] = [];
  const endpoint = createMcpEndpoint({ log: createLogger('debug', (line) => logged.push(line)), ...overrides });
  const app = new Koa();
  app.silent = true;
  app.use(async (ctx, next) => {
    const userId = ctx.get('x-test-user') || 'alice';
    ctx.state['caller'] = { userId, clientId: 'client-a', upstreams: upstreamsOf(userId, ctx.get('x-test-grant')) };
    await endpoint.middleware(ctx, next);
  });
  const url = await serveForThisTest(app, () => endpoint.close());
  return { url, endpoint, logged };
}

/** Serves `app` on a loopback port until the current test ends, then runs `close` and stops; returns its `/mcp` URL. */
export async function serveForThisTest(app: Koa, close: () => Promise<void> | void): Promise<string> {
  const server: HttpServer = await new Promise((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  afterThisTest(async () => {
    await close();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
}

/** An SDK 1.x client speaking the 2025-11-25 session protocol, as `user`. */
export async function connectLegacy(url: string, user = 'alice', capabilities: Record<string, unknown> = {}): Promise<LegacyClient> {
  const client = new LegacyClient({ name: 'legacy-test', version: '1.0.0' }, { capabilities });
  await client.connect(new LegacyTransport(new URL(url), { requestInit: { headers: { 'X-Test-User': user } } }));
  afterThisTest(() => client.close());
  return client;
}

/** An SDK v2 client speaking 2026-07-28, as `user` (with the grant `grant` names, when given). */
export async function connectModern(url: string, user = 'alice', capabilities: Record<string, unknown> = {}, grant?: string): Promise<ModernClient> {
  const client = new ModernClient({ name: 'modern-test', version: '1.0.0' }, { capabilities, versionNegotiation: { mode: { pin: MODERN_VERSION } } });
  const headers = { 'X-Test-User': user, ...(grant !== undefined ? { 'X-Test-Grant': grant } : {}) };
  await client.connect(new ModernTransport(new URL(url), { requestInit: { headers } }));
  afterThisTest(() => client.close());
  return client;
}

import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';

import type { Context } from 'koa';

import type { Logger } from '../../log.js';
import { MODERN_PROTOCOL_VERSION } from '../http-headers.js';
import type { McpCaller, McpUpstream } from '../types.js';
import { lowerCased } from '../upstream-request.js';
import { safeReason } from './forwarding.js';

/** The protocol era of one request: MCP 2026-07-28 (`modern`) or 2025 (`legacy`). */
export type RequestEra = 'modern' | 'legacy';

/** An MCP endpoint that speaks both eras toward the client and the upstream's era toward it. */
export interface PassthroughBridge {
  middleware(ctx: Context, next: () => Promise<void>): Promise<void>;
  hasSession(sessionId: string): boolean;
}

/** Settings of {@link createEraBridge}. */
export interface EraBridgeOptions {
  log: Logger;
  bridge: PassthroughBridge;
  /** How long a learnt upstream era is trusted before it is learnt again. */
  eraTtlMs: number;
  /** The caller's credentials at the upstream, for the era probe. */
  upstreamHeaders(caller: McpCaller, upstream: McpUpstream): Promise<Record<string, string>>;
  /** Sends one request to the upstream; resolves with its response (headers read, body not). */
  send(ctx: Context, upstream: McpUpstream, headers: OutgoingHttpHeaders, body: Buffer | undefined, method: string): Promise<IncomingMessage>;
}

/** Routes to the bridge what the upstream's protocol era cannot serve, learning that era from its answers. */
export interface EraBridge {
  /** Hands the request to the bridge, with the body already read (`parsed`) for a POST. */
  serve(ctx: Context, next: () => Promise<void>, parsed: unknown): Promise<void>;
  /** Whether the bridge serves this request without asking the upstream: its own session, or an era the upstream was found not to speak. */
  servesFirst(ctx: Context, upstream: McpUpstream, requestEra: RequestEra, initializing: boolean): boolean;
  /**
   * Learns the upstream's era from its answer to a POST. True when the upstream refused the
   * request because it does not speak its era at all: the response is drained and the bridge
   * serves the request instead; otherwise the refusal is the upstream's answer.
   */
  servesInstead(ctx: Context, caller: McpCaller, upstream: McpUpstream, response: IncomingMessage, requestEra: RequestEra, initializing: boolean): Promise<boolean>;
}

/** Creates the era routing of a single-upstream endpoint that has a bridge. */
export function createEraBridge(options: EraBridgeOptions): EraBridge {
  const { log, bridge } = options;
  /** What each upstream URL was found to speak; learnt from its answers, once. */
  const eras = new Map<string, { modern?: boolean; legacy?: boolean; until: number }>();
  const eraOf = (url: string) => {
    const known = eras.get(url);
    if (known && known.until > Date.now()) return known;
    eras.delete(url);
    return undefined;
  };
  const learn = (url: string, era: RequestEra, speaks: boolean) => {
    const known = eraOf(url) ?? { until: Date.now() + options.eraTtlMs };
    if (known[era] === speaks) return;
    known[era] = speaks;
    eras.set(url, known);
    log.info('upstream protocol era learnt', { url: safeReason(url), era, speaks });
  };

  /** Asks the upstream `server/discover` (MCP 2026-07-28): true when it answers with a result. */
  async function speaksModern(ctx: Context, caller: McpCaller, upstream: McpUpstream): Promise<boolean> {
    const probe = {
      jsonrpc: '2.0',
      id: 'consent-gateway-era-probe',
      method: 'server/discover',
      params: { _meta: { 'io.modelcontextprotocol/protocolVersion': MODERN_PROTOCOL_VERSION, 'io.modelcontextprotocol/clientInfo': { name: 'consent-gateway', version: '0.1.0' }, 'io.modelcontextprotocol/clientCapabilities': {} } },
    };
    const credentials = await options.upstreamHeaders(caller, upstream);
    const answer = await options.send(
      ctx,
      upstream,
      {
        'user-agent': 'consent-gateway',
        accept: 'application/json, text/event-stream',
        'content-type': 'application/json',
        'mcp-protocol-version': MODERN_PROTOCOL_VERSION,
        'mcp-method': 'server/discover',
        ...lowerCased(credentials),
      },
      Buffer.from(JSON.stringify(probe)),
      'POST',
    );
    let text = '';
    for await (const chunk of answer) {
      text += String(chunk);
      if (text.length > 256 * 1024) break;
    }
    answer.destroy();
    return answer.statusCode === 200 && text.includes('"result"');
  }

  return {
    serve(ctx, next, parsed) {
      if (ctx.method === 'POST') (ctx.state as { mcpParsedBody?: { value: unknown } }).mcpParsedBody = { value: parsed };
      return bridge.middleware(ctx, next);
    },

    servesFirst(ctx, upstream, requestEra, initializing) {
      const sessionHeader = ctx.get('mcp-session-id');
      const known = eraOf(upstream.url);
      if (sessionHeader !== '' && bridge.hasSession(sessionHeader)) return true;
      if (ctx.method === 'POST' && requestEra === 'modern' && known?.modern === false) return true;
      return initializing && known?.legacy === false;
    },

    async servesInstead(ctx, caller, upstream, response, requestEra, initializing) {
      const status = response.statusCode ?? 502;
      if (status >= 200 && status < 300) {
        learn(upstream.url, requestEra, true);
      } else if ([400, 404, 405, 406].includes(status) && (requestEra === 'modern' || initializing) && eraOf(upstream.url)?.[requestEra] === undefined) {
        const modern = await speaksModern(ctx, caller, upstream).catch(() => false);
        learn(upstream.url, 'modern', modern);
        const mismatch = requestEra === 'modern' ? !modern : modern;
        if (mismatch) {
          learn(upstream.url, requestEra, false);
          response.resume();
          return true;
        }
      }
      return false;
    },
  };
}

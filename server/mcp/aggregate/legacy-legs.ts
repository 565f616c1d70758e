import type { IncomingMessage } from 'node:http';

import { SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/server';
import type { Context } from 'koa';

import { MODERN_PROTOCOL_VERSION } from '../http-headers.js';
import { eventData } from '../json-rpc.js';
import type { McpCaller, McpUpstream } from '../types.js';
import { lowerCased, sendUpstreamRequest } from '../upstream-request.js';
import type { FastCallOptions } from './fast-call.js';

/** What the gateway learnt of one upstream URL's 2025-era leg. */
type Verdict = { kind: 'stateless'; version: string } | { kind: 'none'; until: number };

/** How long an upstream whose 2025 leg keeps sessions (or refused) is not asked again: a redeployed one is found within it. */
const SETTLED_MS = 10 * 60_000;
/** How long a probe that failed in a way the caller or the moment could explain (credentials, network) is not repeated. */
const UNSETTLED_MS = 30_000;
/** Bound on each of the probe's round trips, and on the answer's size. */
const PROBE_TIMEOUT_MS = 10_000;
const PROBE_MAX_BYTES = 256 * 1024;
const PROBE_ID = 'consent-gateway-leg-probe';

/** The 2025 revisions a leg may speak (those the SDK's session transport accepts, before 2026-07-28). */
const LEGACY_VERSIONS = new Set(SUPPORTED_PROTOCOL_VERSIONS.filter((version) => version < MODERN_PROTOCOL_VERSION));

/** Why a probe found no leg: whether the answer settles it for a while, and what to log. */
class NoLeg extends Error {
  constructor(
    message: string,
    readonly settled: boolean,
  ) {
    super(message);
  }
}

/**
 * Which upstreams take a 2025-era `tools/call` without a session: those whose answer to a 2025
 * `initialize` (MCP 2025-11-25 Lifecycle) carried no `Mcp-Session-Id` (Basic/Transports §Session
 * Management: a server that assigns none is stateless). The aggregate endpoint sends a 2025
 * session's calls to such an upstream in its client's own era, unchanged, instead of translating
 * them to 2026-07-28 and back. Learnt per URL from the endpoint's own 2025 connection to an
 * upstream of that era only, else asked once with the first caller's credentials (`initialize`,
 * then `notifications/initialized`); shared by every session, forgotten for a while when the
 * upstream refuses a call. An upstream whose leg keeps sessions, refuses, or speaks only
 * 2026-07-28 has none.
 */
export function createLegacyLegs(options: Pick<FastCallOptions, 'log' | 'headers' | 'clientInfo' | 'legacyLeg'>) {
  const { log } = options;
  const known = new Map<string, Verdict>();
  const probing = new Map<string, Promise<string | undefined>>();

  /** Sends one probe request with the caller's credentials (a DPoP proof names this method and URL). */
  async function send(ctx: Context, caller: McpCaller, upstream: McpUpstream, method: string, headers: Record<string, string>, body?: object): Promise<IncomingMessage> {
    let credentials: Record<string, string>;
    try {
      credentials = await options.headers(caller, upstream, { method, url: upstream.url });
    } catch {
      throw new NoLeg('no credentials for it yet', false);
    }
    const base = { accept: 'application/json, text/event-stream', 'user-agent': 'consent-gateway', ...(body ? { 'content-type': 'application/json' } : {}) };
    try {
      return await sendUpstreamRequest(ctx, upstream, {
        method,
        headers: { ...base, ...headers, ...lowerCased(credentials) },
        body: body ? Buffer.from(JSON.stringify(body)) : undefined,
        timeoutMs: PROBE_TIMEOUT_MS,
      });
    } catch {
      throw new NoLeg('it could not be reached', false);
    }
  }

  /** The protocol version of `upstream`'s stateless 2025 leg; rejects with a {@link NoLeg} when it has none. */
  async function probe(ctx: Context, caller: McpCaller, upstream: McpUpstream): Promise<string> {
    const initialize = { jsonrpc: '2.0', id: PROBE_ID, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: options.clientInfo } };
    const answer = await send(ctx, caller, upstream, 'POST', {}, initialize);
    const status = answer.statusCode ?? 0;
    if (status !== 200) {
      answer.resume();
      throw new NoLeg(`it answered initialize with HTTP ${status}`, status !== 401 && status !== 403 && status < 500);
    }
    const session = answer.headers['mcp-session-id'];
    const text = await readProbeAnswer(answer);
    const version = versionOf(text, answer.headers['content-type'] ?? '');
    if (version === undefined || !LEGACY_VERSIONS.has(version)) throw new NoLeg('it did not take a 2025 initialize', true);
    if (typeof session === 'string') {
      // A leg with sessions: each 2025 session would need one of its own. End the one just opened.
      void send(ctx, caller, upstream, 'DELETE', { 'mcp-session-id': session, 'mcp-protocol-version': version }).then(
        (ended) => ended.resume(),
        () => undefined,
      );
      throw new NoLeg('its 2025 leg keeps sessions', true);
    }
    const initialized = await send(ctx, caller, upstream, 'POST', { 'mcp-protocol-version': version }, { jsonrpc: '2.0', method: 'notifications/initialized' });
    initialized.resume();
    const accepted = initialized.statusCode ?? 0;
    if (accepted < 200 || accepted > 299) throw new NoLeg(`it answered notifications/initialized with HTTP ${accepted}`, accepted !== 401 && accepted !== 403 && accepted < 500);
    return version;
  }

  return {
    /**
     * The protocol version to send `upstream` a 2025 session's call in, or `undefined` when it has
     * no stateless 2025 leg (or that is not known yet and could not be learnt now); a promise of
     * either only while it is being learnt.
     */
    versionFor(ctx: Context, caller: McpCaller, upstream: McpUpstream): string | undefined | Promise<string | undefined> {
      // A known verdict answers in this turn: no promise on the call's path once learnt.
      const verdict = known.get(upstream.url);
      if (verdict?.kind === 'stateless') return verdict.version;
      if (verdict && verdict.until > Date.now()) return undefined;
      // A 2025 connection to it (an upstream of that era only) found out already: nothing to ask.
      const found = options.legacyLeg(upstream);
      if (found === null) return undefined;
      if (found !== undefined && LEGACY_VERSIONS.has(found)) {
        known.set(upstream.url, { kind: 'stateless', version: found });
        return found;
      }
      let pending = probing.get(upstream.url);
      if (!pending) {
        pending = probe(ctx, caller, upstream).then(
          (version) => {
            known.set(upstream.url, { kind: 'stateless', version });
            log.debug('upstream takes 2025 calls without a session', { upstream: upstream.name, version });
            return version;
          },
          (error: unknown) => {
            const settled = error instanceof NoLeg && error.settled;
            known.set(upstream.url, { kind: 'none', until: Date.now() + (settled ? SETTLED_MS : UNSETTLED_MS) });
            log.debug('upstream has no stateless 2025 leg', { upstream: upstream.name, reason: error instanceof NoLeg ? error.message : 'its answer could not be read' });
            return undefined;
          },
        );
        probing.set(upstream.url, pending);
        void pending.finally(() => probing.delete(upstream.url));
      }
      return pending;
    },

    /** `upstream` refused a call sent on its leg: its calls go in 2026-07-28 again for a while. */
    refused(upstream: McpUpstream): void {
      known.set(upstream.url, { kind: 'none', until: Date.now() + SETTLED_MS });
    },
  };
}

/** The probe answer's body as text, bounded in size and time. */
function readProbeAnswer(response: IncomingMessage): Promise<string> {
  response.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => response.destroy(), PROBE_TIMEOUT_MS);
    response.on('data', (chunk: string) => {
      text += chunk;
      if (text.length > PROBE_MAX_BYTES) response.destroy();
    });
    response.once('end', () => {
      clearTimeout(timer);
      resolve(text);
    });
    response.once('close', () => {
      clearTimeout(timer);
      if (!response.complete) reject(new NoLeg('its answer to initialize did not arrive whole', false));
    });
  });
}

/** The `protocolVersion` of the initialize result in `text` (JSON, or an event stream). */
function versionOf(text: string, type: string): string | undefined {
  const messages = type.includes('text/event-stream') ? eventData(text) : [text];
  for (const data of messages) {
    try {
      const message = JSON.parse(data) as { id?: unknown; result?: { protocolVersion?: unknown } } | null;
      if (message?.id === PROBE_ID && typeof message.result?.protocolVersion === 'string') return message.result.protocolVersion;
    } catch {
      // Not this message.
    }
  }
  return undefined;
}

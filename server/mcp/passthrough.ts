import type { ClientRequest, IncomingMessage, OutgoingHttpHeaders } from 'node:http';

import type { Context } from 'koa';

import type { Logger } from '../log.js';
import type { UpstreamChallenge } from './bearer-challenge.js';
import { isModernVersion, requestProtocolVersion } from './http-headers.js';
import { JSON_RPC_ERRORS, JsonRpcError } from './json-rpc.js';
import { liftGatewayState, readClientRequest } from './passthrough/client-request.js';
import { createEraBridge, type PassthroughBridge } from './passthrough/era-bridge.js';
import { answeredUpstreamFailure, answerGatewayError, answerUnreachable, pipeUpstreamResponse, sendWithCredentials, upstreamRequestHeaders } from './passthrough/forwarding.js';
import { createPassthroughSigner } from './passthrough/session-ids.js';
import { guardToolCalls, refusedBeforeReading } from './request-guards.js';
import type { McpCaller, McpUpstream } from './types.js';
import { sendUpstreamRequest } from './upstream-request.js';

/** Options of {@link createPassthroughEndpoint}. */
export interface PassthroughOptions {
  log: Logger;
  /** The caller's credentials at the upstream; throwing a {@link JsonRpcError} (a URL elicitation, -32042) answers with it. */
  upstreamHeaders(caller: McpCaller, upstream: McpUpstream, request?: { method: string; url: string }): Promise<Record<string, string>>;
  /** The upstream answered 401 to a request sent with `sent`; resolving true sends it once more. */
  upstreamUnauthorized?(caller: McpCaller, upstream: McpUpstream, sent: Record<string, string>, retried: boolean, challenge?: UpstreamChallenge): Promise<boolean>;
  /**
   * The upstream answered 403 `insufficient_scope` naming `scopes` (step-up); resolving true sends
   * the request once more, throwing a {@link JsonRpcError} (a URL elicitation) answers with it.
   */
  upstreamInsufficientScope?(caller: McpCaller, upstream: McpUpstream, sent: Record<string, string>, scopes: string[]): Promise<boolean>;
  /**
   * Key the HMACs that bind a session id (and the gateway's own request state) to its user, client
   * and upstream: the first signs, every one verifies, so a key rotation ends no session.
   */
  sessionKeys: readonly Buffer[];
  /** Largest accepted POST body. */
  maxBodyBytes: number;
  /** Bound on connecting to the upstream and on waiting for its response headers. Default 120 s. */
  responseTimeoutMs?: number;
  /**
   * Serves requests of the protocol era the upstream does not speak (a 2026-07-28 client in front
   * of a 2025-only server, or the reverse), with the upstream's names untouched: an MCP endpoint
   * that speaks both eras on one side and the upstream's era on the other.
   */
  bridge?: PassthroughBridge;
  /** How long a learnt upstream era is trusted before it is learnt again. Default 1 hour. */
  eraTtlMs?: number;
}

/** The single-upstream endpoint returned by {@link createPassthroughEndpoint}. */
export interface PassthroughEndpoint {
  /** Serves `/mcp/<upstream>` for `ctx.state.caller` (whose `upstreams` holds exactly that upstream). */
  middleware(ctx: Context, next: () => Promise<void>): Promise<void>;
  /** Requests being forwarded right now (open streams included). */
  inFlight(): number;
  /** Ends every forwarded request and refuses new ones with 503. */
  close(): void;
}

/**
 * Creates the gateway's single-upstream MCP endpoint, `/mcp/<upstream>`: every message of either
 * protocol era is forwarded to the one upstream as it came (names, URIs, schemas, request state
 * untouched), with the user's own upstream credentials instead of the gateway token (no token
 * passthrough). The upstream's answer streams back as it comes, JSON or SSE.
 *
 * Nothing is kept per session here: a 2025 session id is the upstream's, with an HMAC that binds
 * it to the user, client and upstream, so any gateway process can forward any request and a
 * session id presented by another identity is refused.
 */
export function createPassthroughEndpoint(options: PassthroughOptions): PassthroughEndpoint {
  const { log } = options;
  const responseTimeoutMs = options.responseTimeoutMs ?? 120_000;
  const live = new Set<ClientRequest>();
  let closed = false;
  const signer = createPassthroughSigner(options.sessionKeys);

  /** Sends one request to the upstream; resolves with its response (headers read, body not). */
  function send(ctx: Context, upstream: McpUpstream, headers: OutgoingHttpHeaders, body: Buffer | undefined, method = ctx.method): Promise<IncomingMessage> {
    return sendUpstreamRequest(ctx, upstream, { method, headers, body, timeoutMs: responseTimeoutMs, live });
  }
  const eraBridge = options.bridge ? createEraBridge({ log, bridge: options.bridge, eraTtlMs: options.eraTtlMs ?? 60 * 60_000, upstreamHeaders: (caller, upstream) => options.upstreamHeaders(caller, upstream), send }) : undefined;

  return {
    inFlight: () => live.size,
    close() {
      closed = true;
      for (const request of live) request.destroy();
    },

    async middleware(ctx, next) {
      const caller = (ctx.state as { caller?: McpCaller }).caller;
      const upstream = caller?.upstreams.length === 1 ? caller.upstreams[0] : undefined;
      if (!caller || !upstream) throw new Error('the /mcp/<upstream> endpoint needs ctx.state.caller with exactly one upstream');
      if (refusedBeforeReading(ctx, closed)) return;
      const request = await readClientRequest(ctx, options.maxBodyBytes);
      if (!request) return;
      // A tool the token lacks a tool scope for is refused (403, step-up) before anything is forwarded.
      guardToolCalls(ctx, request.parsed);
      const { requestId } = request;

      const requestEra = isModernVersion(requestProtocolVersion(request.message, ctx.get('mcp-protocol-version'))) ? 'modern' : 'legacy';
      const initializing = request.message?.method === 'initialize';
      if (eraBridge?.servesFirst(ctx, upstream, requestEra, initializing)) return eraBridge.serve(ctx, next, request.parsed);
      if (!liftGatewayState(ctx, request, (state) => signer.verifyState(caller, upstream.name, state))) return;

      const headers = upstreamRequestHeaders(ctx);
      const wrappedSession = ctx.get('mcp-session-id');
      if (wrappedSession !== '') {
        const sessionId = signer.unwrapSession(caller, upstream.name, wrappedSession);
        if (sessionId === undefined) {
          if (wrappedSession.includes('.')) log.warn('mcp session id of another identity or upstream refused', { userId: caller.userId, clientId: caller.clientId, upstream: upstream.name });
          ctx.status = 404;
          ctx.body = { jsonrpc: '2.0', error: { code: JSON_RPC_ERRORS.sessionNotFound, message: 'Session not found' }, id: requestId };
          return;
        }
        headers['mcp-session-id'] = sessionId;
      }

      let response: IncomingMessage;
      try {
        response = await sendWithCredentials(ctx, caller, upstream, options, headers, (withCredentials) => send(ctx, upstream, withCredentials, request.body));
      } catch (error) {
        if (error instanceof JsonRpcError) {
          return answerGatewayError(ctx, log, request.message, requestId, error, upstream, (elicitationId) => signer.signState(caller, upstream.name, elicitationId));
        }
        return answerUnreachable(ctx, log, caller, upstream, requestId, error);
      }

      if (eraBridge && ctx.method === 'POST' && request.message !== undefined && (await eraBridge.servesInstead(ctx, caller, upstream, response, requestEra, initializing))) {
        return eraBridge.serve(ctx, next, request.parsed);
      }
      if (answeredUpstreamFailure(ctx, log, caller, upstream, response, requestId)) return;
      pipeUpstreamResponse(ctx, response, (sessionId) => signer.wrapSession(caller, upstream.name, sessionId));
    },
  };
}

import http, { type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders, type RequestOptions, type ServerResponse } from 'node:http';
import https from 'node:https';

import type { Context } from 'koa';

import { recordUpstreamRequest } from '../metrics.js';
import { traceUpstreamRequest, tracingInstalled } from '../tracing.js';
import type { McpUpstream } from './types.js';

/**
 * Kept-alive connections to upstreams, shared by every endpoint that streams to them. The gateway
 * closes an idle one itself after 4 s: before the 5 s after which Node's and uvicorn's servers
 * close theirs by default, and a second before a shorter `Keep-Alive: timeout` the upstream
 * announces (Node's agent heeds that only with an idle timeout of its own). So no call goes out
 * on a connection the upstream is closing at that moment, which would fail it with a reset.
 */
const idleMs = 4_000;
const agents = { http: new http.Agent({ keepAlive: true, maxSockets: 256, timeout: idleMs }), https: new https.Agent({ keepAlive: true, maxSockets: 256, timeout: idleMs }) };

/** One HTTP request to an upstream's MCP endpoint, as {@link sendUpstreamRequest} sends it. */
export interface UpstreamRequest {
  method: string;
  headers: OutgoingHttpHeaders;
  body: Buffer | undefined;
  /** Bound on connecting and on waiting for the response headers; the body then streams unbounded. */
  timeoutMs: number;
  /** Tracks the request while it is open, so its owner can end it on shutdown. */
  live?: Set<ClientRequest>;
}

/**
 * Sends one request to `upstream` and resolves with its response once the headers arrived (the
 * body not read), traced and counted. When the client's own response (`ctx.res`) closes before it
 * finished, the upstream request ends too: a client gone away cancels its stream or long call.
 */
export function sendUpstreamRequest(ctx: Context, upstream: McpUpstream, request: UpstreamRequest): Promise<IncomingMessage> {
  const target = targetOf(upstream.url);
  const secure = target.protocol === 'https:';
  const { method, headers, body, timeoutMs, live } = request;
  const send = () =>
    new Promise<IncomingMessage>((resolve, reject) => {
      const sent = (secure ? https : http).request({
        ...target,
        method,
        headers: body ? { ...headers, 'content-length': body.length } : headers,
        agent: secure ? agents.https : agents.http,
        timeout: timeoutMs,
      });
      live?.add(sent);
      const started = performance.now();
      sent.once('close', () => live?.delete(sent));
      sent.once('response', (response) => {
        sent.setTimeout(0);
        recordUpstreamRequest(upstream.name, response.statusCode ?? 0, (performance.now() - started) / 1000);
        resolve(response);
      });
      sent.once('timeout', () => sent.destroy(new Error(`no answer within ${Math.round(timeoutMs / 1000)} s`)));
      sent.once('error', (error) => {
        recordUpstreamRequest(upstream.name, 'error', (performance.now() - started) / 1000);
        reject(error);
      });
      // The response's close, not the request's: a request closes as soon as its body was read.
      ctx.res.once('close', () => {
        if (!ctx.res.writableFinished) sent.destroy();
      });
      sent.end(body);
    });
  return tracingInstalled() ? traceUpstreamRequest(upstream, method, headers, send, (response) => response.statusCode ?? 0) : send();
}

/** Where requests to an upstream URL go, as `http.request` takes a URL; parsed once per URL. */
type UpstreamTarget = Pick<RequestOptions, 'protocol' | 'hostname' | 'port' | 'path' | 'auth'>;
const targets = new Map<string, UpstreamTarget>();

function targetOf(url: string): UpstreamTarget {
  let target = targets.get(url);
  if (!target) {
    const parsed = new URL(url);
    // As `http.request(url)` takes it: an IPv6 host without its brackets.
    const hostname = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname;
    target = {
      protocol: parsed.protocol,
      hostname,
      port: parsed.port === '' ? undefined : Number(parsed.port),
      path: `${parsed.pathname}${parsed.search}`,
      ...(parsed.username || parsed.password ? { auth: `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}` } : {}),
    };
    if (targets.size >= 1024) targets.clear();
    targets.set(url, target);
  }
  return target;
}

/** Header names in lower case, as Node sends them, so a credential replaces the header it names. */
export function lowerCased(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
}

/**
 * An event stream's headers go out with its first bytes when they follow in this turn of the
 * event loop (one write instead of two), else on their own at its end: a client learns at once
 * that its stream is open, however long the first event takes. `written` tells whether any of the
 * body was written yet (the headers went with it).
 */
export function flushHeadersThisTurn(res: ServerResponse, written: () => boolean): void {
  setImmediate(() => {
    if (!written() && !res.writableEnded && !res.destroyed) res.flushHeaders();
  });
}

import http, { type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';

import type { Context } from 'koa';

import { recordUpstreamRequest } from '../metrics.js';
import { traceUpstreamRequest } from '../tracing.js';
import type { McpUpstream } from './types.js';

/** Kept-alive connections to upstreams, shared by every endpoint that streams to them. */
const agents = { http: new http.Agent({ keepAlive: true, maxSockets: 256 }), https: new https.Agent({ keepAlive: true, maxSockets: 256 }) };

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
  const url = new URL(upstream.url);
  const secure = url.protocol === 'https:';
  const { method, headers, body, timeoutMs, live } = request;
  return traceUpstreamRequest(
    upstream,
    method,
    headers,
    () =>
      new Promise<IncomingMessage>((resolve, reject) => {
        const sent = (secure ? https : http).request(url, {
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
      }),
    (response) => response.statusCode ?? 0,
  );
}

/** Header names in lower case, as Node sends them, so a credential replaces the header it names. */
export function lowerCased(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
}

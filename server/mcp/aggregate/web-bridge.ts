import { Readable } from 'node:stream';

import type { Context } from 'koa';

import { flushHeadersThisTurn } from '../upstream-request.js';

/**
 * The web-standard `Request` the SDK v2 HTTP entry points take, built from a Koa request whose
 * body the gateway already read (`body`), with a signal that aborts when the client goes away.
 */
export function toWebRequest(ctx: Context, body: unknown): { request: Request; abort: AbortController } {
  const abort = new AbortController();
  ctx.res.once('close', () => abort.abort());
  const headers = new Headers();
  for (const [name, value] of Object.entries(ctx.req.headers)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one);
  }
  // The body is handed over parsed; the headers must not announce one of another length.
  headers.delete('content-length');
  headers.delete('transfer-encoding');
  const url = new URL(ctx.originalUrl, `${ctx.protocol}://${ctx.host || 'localhost'}`);
  const request = new Request(url, {
    method: ctx.method,
    headers,
    signal: abort.signal,
    ...(ctx.method === 'POST' ? { body: JSON.stringify(body) } : {}),
  });
  return { request, abort };
}

/**
 * Writes a web-standard `Response` to the Koa response, streaming its body (SSE included) as it
 * comes and cancelling it when the client goes away. Resolves once the response ended.
 */
export async function sendWebResponse(ctx: Context, response: Response): Promise<void> {
  ctx.respond = false;
  const { res } = ctx;
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    headers[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) headers['set-cookie'] = cookies;
  res.writeHead(response.status, headers);
  if (!response.body) {
    res.end();
    return;
  }
  const body = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>);
  let flowing = false;
  if (headers['content-type']?.includes('text/event-stream')) flushHeadersThisTurn(res, () => flowing);
  await new Promise<void>((resolve) => {
    const finish = () => {
      body.destroy();
      resolve();
    };
    res.once('close', finish);
    body.once('error', () => {
      if (!res.writableEnded) res.end();
      finish();
    });
    body.pipe(res);
    body.once('data', () => (flowing = true));
  });
}

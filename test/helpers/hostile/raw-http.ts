import { request } from 'node:http';

/** One request exactly as written: the path is sent unnormalized, headers as given (Host included). */
export interface RawRequest {
  method: string;
  /** Path and query, sent as they are (already percent-encoded where HTTP needs it). */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Send the body chunked, without `Content-Length`. */
  chunked?: boolean;
}

/** What came back, or why nothing did in time. */
export type RawResponse =
  | { kind: 'response'; status: number; headers: Record<string, string | string[] | undefined>; body: string; ms: number }
  | { kind: 'timeout'; ms: number }
  | { kind: 'error'; message: string; ms: number };

/**
 * Sends `req` to `base` (`http://host:port`) on a connection of its own (no agent: a request the
 * server answered before reading its whole body leaves nothing behind for the next) and reads the whole answer.
 * An answer not complete within `timeoutMs` is a `timeout`: the request is aborted by its signal.
 */
export function sendRaw(base: string, req: RawRequest, timeoutMs: number): Promise<RawResponse> {
  const url = new URL(base);
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  return new Promise((resolve) => {
    const signal = AbortSignal.timeout(timeoutMs);
    const headers: Record<string, string> = { connection: 'close', ...req.headers };
    if (req.body !== undefined && !req.chunked && !Object.keys(headers).some((name) => name.toLowerCase() === 'content-length')) {
      headers['content-length'] = String(Buffer.byteLength(req.body));
    }
    let outgoing;
    try {
      outgoing = request({ host: url.hostname, port: url.port, method: req.method, path: req.path, headers, signal, agent: false, setHost: !Object.keys(headers).some((name) => name.toLowerCase() === 'host') }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ kind: 'response', status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), ms: elapsed() }));
        res.on('error', (error) => resolve(signal.aborted ? { kind: 'timeout', ms: elapsed() } : { kind: 'error', message: error.message, ms: elapsed() }));
      });
    } catch (error) {
      resolve({ kind: 'error', message: (error as Error).message, ms: elapsed() });
      return;
    }
    outgoing.on('error', (error) => resolve(signal.aborted ? { kind: 'timeout', ms: elapsed() } : { kind: 'error', message: error.message, ms: elapsed() }));
    if (req.body !== undefined) outgoing.write(req.body);
    outgoing.end();
  });
}

import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** An https host on loopback that serves client ID metadata documents under a made-up hostname. */
export interface CimdHost {
  hostname: string;
  /** `https://<hostname>:<port>` */
  origin: string;
  /** The self-signed certificate, as the gateway must trust it. */
  ca: string;
  /** Serves `body` (JSON-encoded unless a string) at `pathname`. */
  serve(pathname: string, body: unknown): void;
  /** How many times each path was fetched. */
  hits: Map<string, number>;
  close(): Promise<void>;
}

/** Starts a {@link CimdHost} with a fresh self-signed certificate for `hostname` (openssl). */
export async function startCimdHost(hostname = 'mcp-client.test'): Promise<CimdHost> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cg-cimd-'));
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${hostname}`, '-addext', `subjectAltName=DNS:${hostname}`,
  ]);
  const [keyPem, certPem] = await Promise.all([readFile(key, 'utf8'), readFile(cert, 'utf8')]);
  await rm(dir, { recursive: true, force: true });
  const documents = new Map<string, string>();
  const hits = new Map<string, number>();
  const server: Server = createServer({ key: keyPem, cert: certPem }, (req, res) => {
    const pathname = new URL(req.url ?? '/', 'https://x').pathname;
    hits.set(pathname, (hits.get(pathname) ?? 0) + 1);
    const body = documents.get(pathname);
    if (body === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=60' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    hostname,
    origin: `https://${hostname}:${port}`,
    ca: certPem,
    serve(pathname, body) {
      documents.set(pathname, typeof body === 'string' ? body : JSON.stringify(body));
    },
    hits,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

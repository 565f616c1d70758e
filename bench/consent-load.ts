/**
 * What the load and memory benchmarks do to the built gateway over plain HTTP: complete consent
 * flows (as `test/helpers/consent-driver.ts` drives one, the code exchanged for a token), consent
 * flows left pending, `/mcp` calls with the tokens, and the RSS of the gateway and its dev server.
 */
import { authorizationUrl, ConsentDriver, createPkce, postForm } from '../test/helpers/consent-driver.js';
import type { GatewayProcess } from './gateway-process.js';
import { memoryOf } from './support.js';

export const redirectUri = 'http://127.0.0.1:9/callback';

/**
 * The config the runs give the gateway: the embedded default with the per-address limits out of
 * the way (everything comes from one address), and the bound on a consent request's Temporal calls
 * when one is given (else the gateway's default).
 */
export const configYaml = (pending: number, requestTimeout?: string) => `limits:
  authorization: { perAddress: 1000000, perClient: 1000000 }
  consentPage: { perAddress: 1000000, perClient: 1000000 }
  pendingFlowsPerClient: ${Math.max(1_000_000, pending * 2)}
${requestTimeout === undefined ? '' : `temporal:\n  requestTimeout: ${requestTimeout}\n`}`;

/** The consent request `url` is, for timings: `GET /auth`, `GET /interaction`, `POST identity`, … */
function requestLabel(gatewayUrl: string, url: URL | string, method = 'GET'): string {
  const path = new URL(url, gatewayUrl).pathname;
  const step = /^\/interaction\/[^/]+(?:\/([^/]+))?$/.exec(path);
  return `${method} ${step ? (step[1] ?? 'interaction') : path.startsWith('/auth/') ? '/auth/…' : path}`;
}

/**
 * One complete consent flow as user `user`; resolves with the gateway access token it ends with.
 * `timed`, when given, hears each request's label and how long it took (ms).
 */
export async function completeFlow(
  gateway: GatewayProcess,
  clientId: string,
  user: string,
  timed?: (label: string, ms: number) => void,
): Promise<{ token: string; requests: number }> {
  const driver = new ConsentDriver(gateway.url);
  const pkce = createPkce();
  let requests = 0;
  const request = driver.request.bind(driver);
  driver.request = async (url, init) => {
    requests += 1;
    const started = performance.now();
    try {
      return await request(url, init);
    } finally {
      timed?.(requestLabel(gateway.url, url, init?.method), performance.now() - started);
    }
  };
  const back = await driver.consent(authorizationUrl(gateway.url, { clientId, redirectUri, pkce }), { user, upstreams: ['demo'] });
  const code = back.searchParams.get('code');
  if (!code) throw new Error(`the flow ended without a code: ${back.search.slice(0, 200)}`);
  const token = await postForm(gateway.url, '/token', { grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: clientId, code_verifier: pkce.verifier });
  requests += 1;
  if (!token.body.access_token) throw new Error(`the token endpoint answered ${token.status}: ${JSON.stringify(token.body).slice(0, 200)}`);
  return { token: token.body.access_token, requests };
}

/** One 2026-07-28 `tools/call` of the demo upstream's `echo` through `/mcp`; rejects unless it has a result. */
export async function callEcho(gateway: GatewayProcess, token: string, id: number): Promise<void> {
  const response = await fetch(`${gateway.url}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${token}`,
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tools/call',
      'mcp-name': 'demo__echo',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id,
      method: 'tools/call',
      params: {
        name: 'demo__echo',
        arguments: { text: `load ${id}` },
        _meta: {
          'io.modelcontextprotocol/protocolVersion': '2026-07-28',
          'io.modelcontextprotocol/clientInfo': { name: 'bench-load', version: '1' },
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    }),
  });
  const text = await response.text();
  if (response.status !== 200 || !text.includes('"result"')) throw new Error(`/mcp answered ${response.status}: ${text.slice(0, 200)}`);
}

/** RSS of the gateway and of its dev server, in MiB. */
export async function rss(gateway: GatewayProcess, devServer: number | undefined): Promise<{ gateway: number; devServer: number }> {
  const own = await memoryOf(gateway.pid);
  if (!own) throw gateway.fail('the gateway exited during the run');
  const dev = devServer === undefined ? undefined : await memoryOf(devServer);
  return { gateway: own.rssKiB / 1024, devServer: (dev?.rssKiB ?? Number.NaN) / 1024 };
}

/** Runs `task` for indexes 1…`count`, `width` at a time; resolves with how many succeeded and failed. */
export async function inParallel(count: number, width: number, task: (index: number) => Promise<unknown>): Promise<{ done: number; failed: number; reasons: string[] }> {
  let next = 0;
  let done = 0;
  let failed = 0;
  /** The first few distinct failures, to print. */
  const reasons = new Set<string>();
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < count) {
        next += 1;
        const started = performance.now();
        await task(next).then(
          () => (done += 1),
          (error: unknown) => {
            failed += 1;
            if (reasons.size < 3) reasons.add(`${String(error instanceof Error ? error.message : error).slice(0, 200)} (after ${Math.round(performance.now() - started)} ms)`);
          },
        );
      }
    }),
  );
  return { done, failed, reasons: [...reasons] };
}

/** Opens `count` consent flows left waiting on the user (authorization request and consent page only), 20 at a time. */
export function openPendingFlows(gateway: GatewayProcess, clientId: string, count: number): Promise<{ done: number; failed: number; reasons: string[] }> {
  return inParallel(count, 20, () => new ConsentDriver(gateway.url).start(authorizationUrl(gateway.url, { clientId, redirectUri })));
}

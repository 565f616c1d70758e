import https from 'node:https';
import type { GatewayConfig } from '../config.js';

/**
 * fetch for client metadata documents whose host the config maps to a loopback address (tests).
 * Everything else goes through oidc-provider's own fetch with its private-address guard.
 */
export function metadataFetch(hosts: NonNullable<GatewayConfig['oauth']['dangerouslyResolveMetadataHosts']>) {
  return async (url: string | URL, options: RequestInit & { dispatcher?: unknown }): Promise<Response> => {
    const target = new URL(url);
    const mapped = hosts[target.hostname];
    if (!mapped) return globalThis.fetch(target, options as RequestInit);
    return new Promise((resolve, reject) => {
      const request = https.get(
        {
          host: mapped.address,
          port: target.port || 443,
          path: `${target.pathname}${target.search}`,
          servername: target.hostname,
          ca: mapped.ca,
          headers: { host: target.host, accept: 'application/json' },
          timeout: 2_500,
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => {
            const headers = new Headers();
            for (const [name, value] of Object.entries(response.headers)) {
              if (typeof value === 'string') headers.set(name, value);
            }
            resolve(new Response(Buffer.concat(chunks), { status: response.statusCode ?? 500, headers }));
          });
          response.on('error', reject);
        },
      );
      request.on('timeout', () => request.destroy(new Error('timeout')));
      request.on('error', reject);
    });
  };
}

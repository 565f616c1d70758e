import { afterAll, beforeAll, describe, it } from 'vitest';

import { startConformanceUpstream, type ConformanceUpstream } from '../helpers/conformance-upstream.js';
import { obtainGatewayToken } from '../helpers/gateway-token.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { temporalUnavailable } from '../helpers/temporal.js';
import { EXPECTED_FAILURES_2026 } from './expected-failures.js';
import { provisionConformance, provisionRunnerNode } from './runner.js';
import { checkTarget, targetName, type ConformanceTarget } from './targets.js';
import { startTokenProxy, type TokenProxy } from './token-proxy.js';

/**
 * Through `/mcp/<fixture>` the suite must see what it sees directly: the same expected failures,
 * no more. The runner sends no token; the proxy in front adds one obtained through the real
 * OAuth flow (registration, consent flow workflow, code exchange) for the resource `/mcp/fixture`.
 */
const THROUGH_GATEWAY: ReadonlyArray<Omit<ConformanceTarget, 'url'>> = [
  { version: '0.1.16', expectedFailures: {} },
  { version: '0.2.0-alpha.12', expectedFailures: {} },
  { version: '0.2.0-alpha.12', requirements: '2026-07-28', expectedFailures: EXPECTED_FAILURES_2026 },
];

const RUN_TIMEOUT_MS = 5 * 60_000;

describe.skipIf(Boolean(temporalUnavailable))('MCP conformance suite through the gateway at /mcp/<fixture>', () => {
  let fixture: ConformanceUpstream;
  let gateway: TestGateway;
  let proxy: TokenProxy;

  beforeAll(async () => {
    fixture = await startConformanceUpstream({ name: 'conformance-through-gateway' });
    gateway = await startTestGateway((config) => {
      config.upstreams = [{ name: 'fixture', displayName: 'Conformance fixture', mcpUrl: fixture.url, auth: { type: 'none' }, scopes: [] }];
    });
    const versions = new Set(THROUGH_GATEWAY.map((target) => target.version));
    const [tokens] = await Promise.all([
      obtainGatewayToken(gateway.url, { user: 'conformance-runner', resource: `${gateway.url}/mcp/fixture` }),
      provisionRunnerNode(),
      ...[...versions].map((version) => provisionConformance(version)),
    ]);
    proxy = await startTokenProxy(gateway.url, tokens.accessToken);
  }, RUN_TIMEOUT_MS);

  afterAll(async () => {
    await proxy?.close();
    await gateway?.close();
    await fixture?.close();
  });

  for (const target of THROUGH_GATEWAY) {
    it(
      `${targetName(target)} through /mcp/fixture`,
      async () => {
        await checkTarget({ ...target, url: `${proxy.url}/mcp/fixture` });
      },
      RUN_TIMEOUT_MS,
    );
  }
});

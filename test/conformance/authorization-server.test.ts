import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ConsentDriver, registerClient } from '../helpers/consent-driver.js';
import { freePort } from '../helpers/free-port.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { temporalUnavailable } from '../helpers/temporal.js';
import { runConformanceAuthorization } from './authorization-server.js';
import { EXPECTED_AUTHORIZATION_FAILURES } from './expected-failures.js';
import { provisionConformance, provisionRunnerNode } from './runner.js';

const RUN_TIMEOUT_MS = 5 * 60_000;

/** The authorization server scenarios of 0.2.0-alpha.12 (`conformance list --authorization`). */
const AUTHORIZATION_SCENARIOS = ['authorization-server-metadata-endpoint', 'authorization-code-grant'];

describe.skipIf(Boolean(temporalUnavailable))("MCP conformance suite's authorization command against the gateway's OAuth server", () => {
  let gateway: TestGateway;

  beforeAll(async () => {
    [gateway] = await Promise.all([startTestGateway(), provisionRunnerNode(), provisionConformance('0.2.0-alpha.12')]);
  }, RUN_TIMEOUT_MS);

  afterAll(async () => {
    await gateway?.close();
  });

  it(
    'conformance 0.2.0-alpha.12 authorization --spec-version 2026-07-28: every scenario passes but the expected failures',
    async () => {
      const port = await freePort();
      const redirectUri = `http://127.0.0.1:${port}/callback`;
      const clientId = await registerClient(gateway.url, [redirectUri], 'Conformance runner');
      const driver = new ConsentDriver(gateway.url);
      let callback: URL | undefined;
      const run = await runConformanceAuthorization({
        version: '0.2.0-alpha.12',
        issuer: gateway.url,
        clientId,
        port,
        resource: `${gateway.url}/mcp`,
        specVersion: '2026-07-28',
        async authorize(url) {
          // The user signs in and approves; the browser then lands on the runner's callback.
          callback = await driver.consent(url, { user: 'conformance-user' });
          await fetch(callback);
        },
      });
      console.log(run.summaryLines.join('\n'));
      expect(run.authorizeError, 'the consent flow of the authorization code grant').toBeUndefined();
      expect(callback?.origin).toBe(`http://127.0.0.1:${port}`);
      expect(callback?.searchParams.get('iss'), 'RFC 9207 iss on the authorization response').toBe(gateway.url);
      expect(Object.keys(run.scenarios).sort()).toEqual([...AUTHORIZATION_SCENARIOS].sort());
      const problems: string[] = [];
      for (const scenario of AUTHORIZATION_SCENARIOS) {
        const outcome = run.scenarios[scenario];
        const reason = EXPECTED_AUTHORIZATION_FAILURES[scenario];
        if (reason === undefined && outcome !== 'passed') problems.push(`${scenario}: ${outcome}\n    ${(run.failedChecks[scenario] ?? []).join('\n    ')}`);
        else if (reason !== undefined && outcome === 'passed') problems.push(`${scenario}: passes now; remove it from the expected failures ("${reason}")`);
      }
      expect(problems.join('\n'), `scenarios with an unexpected outcome\n${run.output}`).toBe('');
      if (Object.keys(EXPECTED_AUTHORIZATION_FAILURES).length === 0) expect(run.exitCode).toBe(0);
    },
    RUN_TIMEOUT_MS,
  );
});

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { EXPECTED_UPSTREAM_CLIENT_FAILURES, EXPECTED_UPSTREAM_CLIENT_FAILURES_2026 } from './expected-failures.js';
import { provisionConformance, provisionRunnerNode } from './runner.js';
import { runConformanceClient, type RunConformanceClientOptions } from './upstream-client.js';

// The scenarios run in parallel, each starting the command under tsx: minutes on a small machine.
const RUN_TIMEOUT_MS = 12 * 60_000;

describe('MCP conformance client auth scenarios against the gateway\'s upstream client (npm run upstream-client)', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-conformance-client-'));
    await Promise.all([provisionRunnerNode(), provisionConformance('0.2.0-alpha.12')]);
  }, RUN_TIMEOUT_MS);

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function check(selection: RunConformanceClientOptions['selection'], expected: Readonly<Record<string, string>>, mustInclude: string[]): Promise<void> {
    const run = await runConformanceClient({ version: '0.2.0-alpha.12', selection, outDir: path.join(dir, 'suite' in selection ? 'suite-auth' : 'requirements-2026') });
    const outcomes = Object.entries(run.scenarios);
    const count = (outcome: string) => outcomes.filter(([, result]) => result === outcome).length;
    console.log(
      `upstream client, conformance client ${'suite' in selection ? '--suite auth' : '--requirements 2026-07-28'}: ${count('passed')} of ${outcomes.length} scenarios passed, ${count('warned')} warned, ${count('failed')} failed` +
        `\n${outcomes.map(([scenario, result]) => `  ${result.padEnd(6)} ${scenario}`).join('\n')}\n${run.summaryLines.join('\n')}`,
    );
    for (const scenario of mustInclude) expect(Object.keys(run.scenarios), run.summaryLines.join('\n')).toContain(scenario);
    const unexpected = Object.entries(run.scenarios).filter(([scenario, outcome]) => outcome !== 'passed' && !(scenario in expected));
    expect(Object.fromEntries(unexpected.map(([scenario]) => [scenario, run.findings[scenario]])), run.summaryLines.join('\n')).toEqual({});
    // An authorization scenario listed as failing that passes now is taken off the list. The others
    // test what the command does not attempt; some of their checks pass or not by chance.
    const nowPassing = Object.keys(expected).filter((scenario) => scenario.startsWith('auth/') && run.scenarios[scenario] === 'passed');
    expect(nowPassing).toEqual([]);
  }

  it(
    '--suite auth: every scenario passes but those listed in EXPECTED_UPSTREAM_CLIENT_FAILURES',
    () =>
      check({ suite: 'auth' }, EXPECTED_UPSTREAM_CLIENT_FAILURES, [
        'auth/metadata-default',
        'auth/metadata-var2',
        'auth/metadata-var3',
        'auth/scope-from-www-authenticate',
        'auth/scope-retry-limit',
        'auth/token-endpoint-auth-post',
        'auth/pre-registration',
      ]),
    RUN_TIMEOUT_MS,
  );

  it(
    '--requirements 2026-07-28: the authorization hardening scenarios (iss, issuer mismatch, server migration, resource mismatch), Enterprise-Managed Authorization and the DPoP extension pass too',
    () =>
      check({ requirements: '2026-07-28' }, EXPECTED_UPSTREAM_CLIENT_FAILURES_2026, [
        'auth/iss-supported',
        'auth/iss-supported-missing',
        'auth/iss-wrong-issuer',
        'auth/iss-unexpected',
        'auth/iss-normalized',
        'auth/metadata-issuer-mismatch',
        'auth/authorization-server-migration',
        'auth/resource-mismatch',
        'auth/offline-access-scope',
        'auth/enterprise-managed-authorization',
        // Extension scenarios, run but not scored: DPoP-bound tokens (RFC 9449), nonces at the AS and at the MCP server.
        'auth/dpop',
        'auth/dpop-nonce',
      ]),
    RUN_TIMEOUT_MS,
  );
});

import { afterAll, beforeAll, describe, it } from 'vitest';

import { startConformanceUpstream, type ConformanceUpstream } from '../helpers/conformance-upstream.js';
import { provisionConformance, provisionRunnerNode } from './runner.js';
import { EXPECTED_FAILURES_2026 } from './expected-failures.js';
import { checkTarget, targetName, type ConformanceTarget } from './targets.js';

const DIRECT_TARGETS: ReadonlyArray<Omit<ConformanceTarget, 'url'>> = [
  { version: '0.1.16', expectedFailures: {} },
  { version: '0.2.0-alpha.12', expectedFailures: {} },
  { version: '0.2.0-alpha.12', requirements: '2026-07-28', expectedFailures: EXPECTED_FAILURES_2026 },
];

// A run takes a few seconds; the first one may also install Node 22 and the suite (about 10 s).
const RUN_TIMEOUT_MS = 5 * 60_000;

describe('MCP conformance suite against the conformance fixture, directly', () => {
  let fixture: ConformanceUpstream;

  beforeAll(async () => {
    fixture = await startConformanceUpstream();
    // Provision before the tests so that a slow first install does not count against one test.
    const versions = new Set(DIRECT_TARGETS.map((target) => target.version));
    await Promise.all([provisionRunnerNode(), ...[...versions].map((version) => provisionConformance(version))]);
  }, RUN_TIMEOUT_MS);

  afterAll(async () => {
    await fixture?.close();
  });

  for (const target of DIRECT_TARGETS) {
    it(
      targetName(target),
      async () => {
        await checkTarget({ ...target, url: fixture.url });
      },
      RUN_TIMEOUT_MS,
    );
  }
});

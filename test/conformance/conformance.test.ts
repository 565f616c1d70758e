import { afterAll, beforeAll, describe, it } from 'vitest';

import { startConformanceUpstream, type ConformanceUpstream } from '../helpers/conformance-upstream.js';
import { provisionConformance, provisionRunnerNode } from './runner.js';
import { checkTarget, targetName, type ConformanceTarget } from './targets.js';

/**
 * Scenarios the fixture does not pass when served directly, and why. The Tasks extension
 * (SEP-2663) is run but not scored for 2026-07-28; `@modelcontextprotocol/server` 2.4.0 does not
 * implement it (no `io.modelcontextprotocol/tasks` capability, no CreateTaskResult from
 * `tools/call`, `tasks/*` methods absent), so every tasks scenario fails.
 */
const TASKS_NOT_IMPLEMENTED = 'the SDK (2.4.0) does not implement the Tasks extension (SEP-2663)';

const EXPECTED_FAILURES_2026: Readonly<Record<string, string>> = {
  'tasks-lifecycle': TASKS_NOT_IMPLEMENTED,
  'tasks-capability-negotiation': TASKS_NOT_IMPLEMENTED,
  'tasks-wire-fields': TASKS_NOT_IMPLEMENTED,
  'tasks-request-state-removal': TASKS_NOT_IMPLEMENTED,
  'tasks-mrtr-input': TASKS_NOT_IMPLEMENTED,
  'tasks-request-headers': TASKS_NOT_IMPLEMENTED,
  'tasks-dispatch-and-envelope': TASKS_NOT_IMPLEMENTED,
  'tasks-required-task-error': TASKS_NOT_IMPLEMENTED,
  'tasks-mrtr-composition': TASKS_NOT_IMPLEMENTED,
  // Its checks only look at notifications of tasks; with no task ever created none is verified.
  'tasks-status-notifications': `${TASKS_NOT_IMPLEMENTED}; nothing is verified without tasks`,
};

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

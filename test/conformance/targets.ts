import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'vitest';

import { runConformanceServer, type ConformanceServerRun, type ConformanceVersion } from './runner.js';

/**
 * One thing to run the conformance suite against: a pinned suite version (and, for 0.2.0, an
 * optional requirement set) pointed at an MCP endpoint. The same fixture served directly or
 * through the gateway differs only in `url` and, where the gateway changes behaviour, in
 * `expectedFailures`.
 */
export interface ConformanceTarget {
  version: ConformanceVersion;
  /** `--requirements 2026-07-28`: exactly the scenarios that revision requires, at its wire. */
  requirements?: '2026-07-28';
  /** The MCP endpoint. Must be on loopback (`127.0.0.1`, `localhost`, `[::1]`): dns-rebinding-protection needs it. */
  url: string;
  /** Scenario → why it does not pass. Every other scenario must pass; a listed one that passes is an error too. */
  expectedFailures: Readonly<Record<string, string>>;
}

/** Scenarios both eras run: the content of tools, resources and prompts, and HTTP basics. */
const BOTH_ERAS = [
  'completion-complete',
  'tools-list',
  'tools-call-simple-text',
  'tools-call-image',
  'tools-call-audio',
  'tools-call-embedded-resource',
  'tools-call-mixed-content',
  'tools-call-error',
  'tools-call-with-progress',
  'server-sse-multiple-streams',
  'resources-list',
  'resources-read-text',
  'resources-read-binary',
  'resources-templates-read',
  'prompts-list',
  'prompts-get-simple',
  'prompts-get-with-args',
  'prompts-get-embedded-resource',
  'prompts-get-with-image',
  'dns-rebinding-protection',
];

/** The 30 scenarios 0.1.16 runs by default (its active 2025-11-25 suite). */
const SUITE_2025 = [
  ...BOTH_ERAS,
  'server-initialize',
  'logging-set-level',
  'ping',
  'tools-call-with-logging',
  'tools-call-sampling',
  'tools-call-elicitation',
  'elicitation-sep1034-defaults',
  'elicitation-sep1330-enums',
  'resources-subscribe',
  'resources-unsubscribe',
];

/** `--requirements 2026-07-28` of 0.2.0-alpha.12: 37 scored scenarios, then the 13 it runs unscored. */
const SUITE_2026 = [
  ...BOTH_ERAS,
  'server-stateless',
  'sep-2164-resource-not-found',
  'caching',
  'input-required-result-basic-elicitation',
  'input-required-result-basic-sampling',
  'input-required-result-basic-list-roots',
  'input-required-result-request-state',
  'input-required-result-multiple-input-requests',
  'input-required-result-multi-round',
  'input-required-result-missing-input-response',
  'input-required-result-non-tool-request',
  'input-required-result-result-type',
  'input-required-result-unsupported-methods',
  'input-required-result-tampered-state',
  'input-required-result-capability-check',
  'input-required-result-ignore-extra-params',
  'input-required-result-validate-input',
  // Extension scenarios (tasks) and pending ones: run and reported, not scored for 2026-07-28.
  'tasks-lifecycle',
  'tasks-capability-negotiation',
  'tasks-wire-fields',
  'tasks-request-state-removal',
  'tasks-mrtr-input',
  'tasks-request-headers',
  'tasks-dispatch-and-envelope',
  'tasks-status-notifications',
  'tasks-required-task-error',
  'tasks-mrtr-composition',
  'json-schema-2020-12',
  'http-header-validation',
  'http-custom-header-server-validation',
];

/**
 * The scenarios a target's suite selection runs, pinned so that a run that silently skips
 * scenarios (or a changed default set) fails instead of passing with less coverage.
 */
export function expectedScenarios(target: Pick<ConformanceTarget, 'version' | 'requirements'>): readonly string[] {
  if (target.requirements) return SUITE_2026;
  // 0.2.0 runs the 2025 set by default, plus the session-lifecycle scenario added after that release.
  if (target.version === '0.2.0-alpha.12') {
    return [...SUITE_2025, 'server-session-lifecycle'];
  }
  return SUITE_2025;
}

/** A readable name for a target in test titles. */
export function targetName(target: Pick<ConformanceTarget, 'version' | 'requirements'>): string {
  return `conformance ${target.version}${target.requirements ? ` --requirements ${target.requirements}` : ''}`;
}

/**
 * Run the suite against a target inside a test: print the runner's summary, then assert that the
 * expected scenarios ran, that the runner's summary agrees with its result files, and that every
 * scenario passed except the listed expected failures (which must still not pass).
 */
export async function checkTarget(target: ConformanceTarget): Promise<ConformanceServerRun> {
  const outDir = await mkdtemp(join(tmpdir(), 'conformance-'));
  try {
    const run = await runConformanceServer({
      version: target.version,
      url: target.url,
      requirements: target.requirements,
      outDir,
    });
    console.log(`${targetName(target)} against ${target.url}\n${run.summaryLines.join('\n')}`);

    const expected = expectedScenarios(target);
    expect(Object.keys(run.scenarios).sort(), 'scenarios run').toEqual([...expected].sort());
    expect(Object.keys(target.expectedFailures).filter((name) => !expected.includes(name)), 'unknown expected failures').toEqual([]);
    expect(summaryMarks(run), "the runner's summary and its result files disagree").toEqual(
      Object.fromEntries(Object.entries(run.scenarios).map(([name, outcome]) => [name, outcome === 'failed' ? '✗' : '✓'])),
    );

    const problems: string[] = [];
    for (const scenario of expected) {
      const outcome = run.scenarios[scenario];
      const reason = target.expectedFailures[scenario];
      if (reason === undefined && outcome !== 'passed') {
        problems.push(`${scenario}: ${outcome}${formatFailures(run.failedChecks[scenario])}`);
      } else if (reason !== undefined && outcome === 'passed') {
        problems.push(`${scenario}: passes now; remove it from the expected failures ("${reason}")`);
      }
    }
    // One string, so the failure message shows each scenario and its failed checks.
    expect(problems.join('\n'), 'scenarios with an unexpected outcome').toBe('');
    if (Object.keys(target.expectedFailures).length === 0) expect(run.exitCode, 'runner exit code').toBe(0);
    return run;
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
}

/** `✓` or `✗` per scenario, as the runner's summary lines show them. */
function summaryMarks(run: ConformanceServerRun): Record<string, string> {
  const marks: Record<string, string> = {};
  for (const line of run.summaryLines) {
    const match = /^([✓✗]) ([\w./-]+): \d+ passed, \d+ failed$/.exec(line.trim());
    if (match?.[1] && match[2]) marks[match[2]] = match[1];
  }
  return marks;
}

function formatFailures(failures: string[] | undefined): string {
  return failures?.length ? `\n    ${failures.join('\n    ')}` : '';
}

import { configDefaults, defineConfig } from 'vitest/config';
import { findPostgresBin } from './test/helpers/postgres-server.js';

const shared = {
  // The Temporal worker's native runtime wants a process of its own, not a thread.
  pool: 'forks',
  testTimeout: 60_000,
  hookTimeout: 120_000,
} as const;

/** The end-to-end tests that run a second time with every gateway on PostgreSQL. */
const postgresEndToEnd = [
  'test/e2e/upstream-*.test.ts',
  'test/e2e/worker-crash-exchange.test.ts',
  'test/e2e/main-path.test.ts',
  'test/e2e/oauth-rules.test.ts',
  'test/e2e/connections.test.ts',
  'test/e2e/elicitation.test.ts',
  'test/e2e/identity-*.test.ts',
  'test/e2e/sdk-clients-both-eras.test.ts',
  'test/e2e/admin.test.ts',
  // Hostile input reaches the store's queries: PostgreSQL refuses some text SQLite takes (a NUL).
  'test/e2e/hostile-corpus.test.ts',
];

/**
 * Runs that exercise whole processes rather than one feature: the crash matrix kills and restarts
 * every part of a gateway at five points of a flow. `npm run test:long` runs them (CI does, after
 * `npm test`), so the default run stays short.
 */
const longRuns = ['test/e2e/crash-matrix.test.ts'];

/**
 * Test files this run leaves out, comma-separated in `TESTS_LEFT_OUT`: CI's pass on the second Node
 * version (see `.ci/run`). A project's own `exclude` replaces vitest's `--exclude`, so it is read here.
 */
const leftOut = (process.env.TESTS_LEFT_OUT ?? '')
  .split(',')
  .map((file) => file.trim())
  .filter(Boolean);

// Without PostgreSQL on this machine the second round is left out (the global setup says so
// loudly); under CI it stays, and the global setup fails the run.
const withPostgres = process.env.CI === 'true' || findPostgresBin() !== undefined;

export default defineConfig({
  test: {
    // Runs once for the whole run, whichever projects run: the Temporal and PostgreSQL servers.
    globalSetup: ['test/helpers/global-setup.ts'],
    reporters: ['default'],
    projects: [
      { test: { name: 'default', include: ['test/**/*.test.ts'], exclude: [...configDefaults.exclude, ...longRuns, ...leftOut], ...shared } },
      { test: { name: 'long', include: longRuns, ...shared } },
      ...(withPostgres ? [{ test: { name: 'postgres', include: postgresEndToEnd, env: { GATEWAY_TEST_STORE: 'postgres' }, ...shared } }] : []),
    ],
  },
});

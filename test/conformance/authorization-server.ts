import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { provisionConformance, provisionRunnerNode, readResults, runProcess, summaryOf, type ConformanceVersion, type ScenarioOutcome } from './runner.js';

/** Arguments of {@link runConformanceAuthorization}. */
export interface RunConformanceAuthorizationOptions {
  version: ConformanceVersion;
  /** The authorization server's issuer. */
  issuer: string;
  /** A client registered with the authorization server, whose redirect URI is `http://127.0.0.1:<port>/callback`. */
  clientId: string;
  /** The port of the runner's callback server. */
  port: number;
  /** The RFC 8707 resource the runner asks a token for. */
  resource?: string;
  /** Keep only the checks of this spec revision and earlier ones (`--spec-version`). */
  specVersion?: '2026-07-28';
  /**
   * Plays the user: gets the authorization request URL the runner printed, and must bring the
   * authorization response to the runner's callback server (e.g. by a consent driver).
   */
  authorize(authorizationUrl: string): Promise<void>;
  timeoutMs?: number;
}

/** What one run of `conformance authorization` produced. */
export interface ConformanceAuthorizationRun {
  summaryLines: string[];
  scenarios: Record<string, ScenarioOutcome>;
  failedChecks: Record<string, string[]>;
  exitCode: number;
  output: string;
  /** Set when {@link RunConformanceAuthorizationOptions.authorize} threw. */
  authorizeError?: unknown;
}

/**
 * Runs `conformance authorization` of a pinned suite version against an authorization server:
 * its metadata scenario, then its authorization code grant, which prints an authorization
 * request and waits for the response on its own callback server; `authorize` completes it.
 */
export async function runConformanceAuthorization(options: RunConformanceAuthorizationOptions): Promise<ConformanceAuthorizationRun> {
  const outDir = await mkdtemp(join(tmpdir(), 'conformance-authorization-'));
  try {
    const [node, cli] = await Promise.all([provisionRunnerNode(), provisionConformance(options.version)]);
    const args = [cli, 'authorization', '--url', options.issuer, '--client-id', options.clientId, '--port', String(options.port), '-o', outDir];
    if (options.resource) args.push('--resource', options.resource);
    if (options.specVersion) args.push('--spec-version', options.specVersion);

    let pending = '';
    let authorizing: Promise<void> | undefined;
    let authorizeError: unknown;
    const watch = (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        // The runner prints the authorization request on a line of its own, then waits for its callback.
        if (authorizing || !/^https?:\/\/\S+\?\S*response_type=code/.test(line.trim())) continue;
        authorizing = options.authorize(line.trim()).catch((error: unknown) => {
          authorizeError = error;
        });
      }
    };
    const { exitCode, output } = await runProcess(node, args, options.timeoutMs ?? 5 * 60_000, undefined, watch);
    await authorizing;
    const summaryLines = summaryOf(output);
    if (summaryLines.length === 0) throw new Error(`conformance ${options.version} authorization printed no summary (exit ${exitCode}):\n${output}`);
    const { scenarios, failedChecks } = await readResults(outDir, 'authorization-server');
    return { summaryLines, scenarios, failedChecks, exitCode, output, ...(authorizeError === undefined ? {} : { authorizeError }) };
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
}

import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectDir } from '../../server/paths.js';

/** What a built file imports statically (`import … from "x"`, `import "x"`), not its `import("x")` calls. */
async function staticImports(file: string): Promise<string[]> {
  const code = await readFile(file, 'utf8');
  return [...code.matchAll(/^import\s+(?:[^'"]*?\s+from\s+)?["']([^"']+)["'];?$/gm)].map((match) => match[1]!);
}

/** The packages an entry point loads at start: everything its static imports reach, through its chunks. */
async function packagesLoadedAtStart(entry: string): Promise<Set<string>> {
  const packages = new Set<string>();
  const seen = new Set<string>();
  const queue = [entry];
  for (let file = queue.pop(); file; file = queue.pop()) {
    if (seen.has(file)) continue;
    seen.add(file);
    for (const specifier of await staticImports(file)) {
      if (specifier.startsWith('.')) queue.push(path.resolve(path.dirname(file), specifier));
      else packages.add(specifier);
    }
  }
  return packages;
}

/** Loaded only when configured: tracing's SDK and exporter, the PostgreSQL driver, the web bundler. */
const onDemand = /^(pg|esbuild|@temporalio\/interceptors-opentelemetry|@opentelemetry\/(?!api$).*)$/;

describe('the built server', () => {
  const dir = path.join(projectDir, '.build', `build-test-${randomUUID()}`);

  beforeAll(async () => {
    await promisify(execFile)(process.execPath, ['scripts/build-server.mjs', '--outdir', dir], { cwd: projectDir });
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.each(['main.js', 'web-main.js', 'worker-main.js'])('%s loads no optional package at start', async (entry) => {
    const packages = await packagesLoadedAtStart(path.join(dir, entry));
    // The scan sees the packages every start needs.
    expect(packages).toContain('@temporalio/client');
    expect([...packages].filter((name) => onDemand.test(name))).toEqual([]);
  });

  it('still holds the optional packages, behind dynamic imports', async () => {
    const files = (await readdir(dir, { recursive: true })).filter((file) => file.endsWith('.js')).map((file) => path.join(dir, file));
    const reachable = new Set<string>();
    for (const file of files) {
      for (const specifier of await staticImports(file)) reachable.add(specifier);
      for (const match of (await readFile(file, 'utf8')).matchAll(/\bimport\(["']([^"']+)["']\)/g)) reachable.add(match[1]!);
    }
    for (const name of ['pg', 'esbuild', '@opentelemetry/sdk-trace-node', '@temporalio/interceptors-opentelemetry']) expect(reachable).toContain(name);
  });
});

describe('the build of other entry points (--entry, as the benchmarks build their server processes)', () => {
  const dir = path.join(projectDir, '.build', `build-test-${randomUUID()}`);

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('builds the named entry points instead of the server', async () => {
    await promisify(execFile)(process.execPath, ['scripts/build-server.mjs', '--outdir', dir, '--entry', 'echo=bench/echo-upstream.ts'], { cwd: projectDir });
    const entries = (await readdir(dir)).filter((file) => file.endsWith('.js'));
    expect(entries).toEqual(['echo.js']);
    // The built module runs without a TypeScript loader.
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', `const m = await import(${JSON.stringify(path.join(dir, 'echo.js'))}); console.log(typeof m.startEchoUpstream)`]);
    expect(stdout.trim()).toBe('function');
  });

  it('refuses an entry that is not NAME=PATH', async () => {
    const run = promisify(execFile)(process.execPath, ['scripts/build-server.mjs', '--outdir', dir, '--entry', 'bench/echo-upstream.ts'], { cwd: projectDir });
    await expect(run).rejects.toThrow(/--entry takes NAME=PATH \(got "bench\/echo-upstream.ts"\)/);
  });
});

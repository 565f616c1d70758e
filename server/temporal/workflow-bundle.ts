import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { projectPath } from '../paths.js';

/** Where the prebuilt workflow bundle lives, and the source it was built from. */
export interface WorkflowBundle {
  codePath: string;
  sourceHash: string;
  /** True when this call built it; false when an up-to-date bundle was reused. */
  built: boolean;
}

const workflowsDir = projectPath('workflows');
const workflowTracingInterceptors = createRequire(import.meta.url).resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors');
const defaultOutDir = projectPath('.build');

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((entry) => entry.isFile() && /\.(ts|js|mjs|json)$/.test(entry.name))
    .map((entry) => path.join(entry.parentPath, entry.name))
    .sort();
}

/** Hash of everything that goes into the bundle: workflow sources, the SDK version and the interceptors. */
async function hashSources(tracing: boolean): Promise<string> {
  const hash = createHash('sha256');
  hash.update(tracing ? 'interceptors: opentelemetry\n' : 'interceptors: none\n');
  const files = [...(await sourceFiles(workflowsDir)), projectPath('node_modules/@temporalio/workflow/package.json'), projectPath('node_modules/@temporalio/interceptors-opentelemetry/package.json')];
  for (const file of files) {
    hash.update(path.relative(projectPath(), file));
    hash.update(await readFile(file));
  }
  return hash.digest('hex');
}

/** Options of {@link ensureWorkflowBundle}. */
export interface WorkflowBundleOptions {
  outDir?: string;
  force?: boolean;
  /**
   * With OpenTelemetry's workflow interceptors (workflow spans joined to the caller's trace), for a
   * worker that traces. Without them (the default) an activation runs no tracing code at all.
   */
  tracing?: boolean;
}

/**
 * Returns the prebuilt workflow bundle (`.build/workflow-bundle.js`, or `workflow-bundle-traced.js`
 * with `tracing`), building it only when the workflow sources changed since the last build (so a
 * start does not run webpack). The two differ only in the interceptors, which schedule nothing:
 * a history recorded by either replays on the other.
 */
export async function ensureWorkflowBundle(options: WorkflowBundleOptions = {}): Promise<WorkflowBundle> {
  const outDir = options.outDir ?? defaultOutDir;
  const name = options.tracing ? 'workflow-bundle-traced' : 'workflow-bundle';
  const codePath = path.join(outDir, `${name}.js`);
  const metaPath = path.join(outDir, `${name}.json`);
  const sourceHash = await hashSources(options.tracing ?? false);
  if (!options.force) {
    try {
      const meta = JSON.parse(await readFile(metaPath, 'utf8')) as { sourceHash?: string };
      if (meta.sourceHash === sourceHash) {
        await readFile(codePath, { flag: 'r' }).then(() => undefined);
        return { codePath, sourceHash, built: false };
      }
    } catch {
      // Missing or unreadable: build below.
    }
  }
  const { code } = await bundleWorkflowCode({
    workflowsPath: path.join(workflowsDir, 'index.ts'),
    // Workflow spans (run, signal, update, activity start) joined to the caller's trace.
    workflowInterceptorModules: options.tracing ? [workflowTracingInterceptors] : [],
    logger: { trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error, log() {} },
  });
  await mkdir(outDir, { recursive: true });
  // Write then rename, so a concurrent reader never sees half a bundle.
  const tmp = `${codePath}.${process.pid}.tmp`;
  await writeFile(tmp, code);
  await rename(tmp, codePath);
  await writeFile(`${metaPath}.${process.pid}.tmp`, JSON.stringify({ sourceHash, builtAt: new Date().toISOString() }));
  await rename(`${metaPath}.${process.pid}.tmp`, metaPath);
  return { codePath, sourceHash, built: true };
}

/** Both bundles, the untraced one first: what a start may need, built ahead (setup, tests, benchmarks). */
export async function ensureWorkflowBundles(options: Omit<WorkflowBundleOptions, 'tracing'> = {}): Promise<[WorkflowBundle, WorkflowBundle]> {
  return [await ensureWorkflowBundle(options), await ensureWorkflowBundle({ ...options, tracing: true })];
}

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

/** Hash of everything that goes into the bundle: workflow sources and the SDK version. */
async function hashSources(): Promise<string> {
  const hash = createHash('sha256');
  const files = [...(await sourceFiles(workflowsDir)), projectPath('node_modules/@temporalio/workflow/package.json'), projectPath('node_modules/@temporalio/interceptors-opentelemetry/package.json')];
  for (const file of files) {
    hash.update(path.relative(projectPath(), file));
    hash.update(await readFile(file));
  }
  return hash.digest('hex');
}

/**
 * Returns the prebuilt workflow bundle, building it only when the workflow sources changed
 * since the last build (so a start does not run webpack).
 */
export async function ensureWorkflowBundle(options: { outDir?: string; force?: boolean } = {}): Promise<WorkflowBundle> {
  const outDir = options.outDir ?? defaultOutDir;
  const codePath = path.join(outDir, 'workflow-bundle.js');
  const metaPath = path.join(outDir, 'workflow-bundle.json');
  const sourceHash = await hashSources();
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
    // Workflow spans (run, signal, update, activity start) joined to the caller's trace. They cost a
    // little per activation with tracing off too: one bundle serves both.
    workflowInterceptorModules: [workflowTracingInterceptors],
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

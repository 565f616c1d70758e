import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { projectDir, projectPath } from './paths.js';

/** One browser bundle: its source entry (relative to the project folder) and its output name. */
export interface WebEntry {
  in: string;
  out: string;
}

/** Every page bundle; a new page adds one line here. */
export const webEntries: readonly WebEntry[] = [
  { in: 'web/consent-app/consent-app.ts', out: 'consent-app' },
  { in: 'web/connections-page/connections-page.ts', out: 'connections-page' },
];

/** Default folder of the built web bundles, served at `/assets/`. */
export const webBundleDir = projectPath('.build/web');

/** Bundles {@link webEntries} with esbuild; returns the absolute paths written (bundles and maps). */
export async function buildWeb(options: { outDir?: string; minify?: boolean } = {}): Promise<{ files: string[] }> {
  const outdir = path.resolve(projectDir, options.outDir ?? webBundleDir);
  // Loaded on demand: a start whose bundles are up to date does not load esbuild.
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    absWorkingDir: projectDir,
    entryPoints: webEntries.map((entry) => ({ in: entry.in, out: entry.out })),
    outdir,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    sourcemap: 'external',
    minify: options.minify ?? true,
    metafile: true,
    logLevel: 'silent',
  });
  for (const warning of result.warnings) console.warn(`esbuild: ${warning.text}`);
  return { files: Object.keys(result.metafile.outputs).map((file) => path.resolve(projectDir, file)).sort() };
}

async function hashSources(): Promise<string> {
  const hash = createHash('sha256');
  const entries = await readdir(projectPath('web'), { withFileTypes: true, recursive: true });
  const files = entries
    .filter((entry) => entry.isFile() && /\.(ts|css)$/.test(entry.name))
    .map((entry) => path.join(entry.parentPath, entry.name))
    .sort();
  for (const file of [...files, projectPath('node_modules/lit/package.json')]) {
    hash.update(path.relative(projectDir, file));
    hash.update(await readFile(file));
  }
  return hash.digest('hex');
}

/** Builds the web bundles unless the sources are unchanged since the last build. */
export async function ensureWebBundle(options: { outDir?: string; force?: boolean } = {}): Promise<{ outDir: string; built: boolean }> {
  const outDir = options.outDir ?? webBundleDir;
  const metaPath = path.join(outDir, 'web-bundle.json');
  const sourceHash = await hashSources();
  if (!options.force) {
    const meta = await readFile(metaPath, 'utf8').then((text) => JSON.parse(text) as { sourceHash?: string }).catch(() => undefined);
    if (meta?.sourceHash === sourceHash) return { outDir, built: false };
  }
  await mkdir(outDir, { recursive: true });
  await buildWeb({ outDir });
  await writeFile(metaPath, JSON.stringify({ sourceHash, builtAt: new Date().toISOString() }));
  return { outDir, built: true };
}

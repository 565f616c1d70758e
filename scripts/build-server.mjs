/**
 * Compiles the server entry points to plain JavaScript under .build/server/ (dependencies stay
 * external), so `npm start` runs node without a TypeScript loader: faster to start, less memory.
 * Plain JavaScript itself, so it needs no loader either.
 */
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const projectDir = fileURLToPath(new URL('..', import.meta.url));
// `--outdir DIR` builds into another folder (a copy that later edits of the sources leave alone).
const outdirFlag = process.argv.indexOf('--outdir');
const outdir = outdirFlag === -1 ? '.build/server' : process.argv[outdirFlag + 1];
// `--entry NAME=PATH`, repeatable, builds those entry points instead of the server's (the benchmarks
// build their server processes so, to measure the code `npm start` runs).
const entries = process.argv.flatMap((arg, index) => (process.argv[index - 1] === '--entry' ? [arg.split('=')] : []));
for (const entry of entries) {
  if (entry.length !== 2 || !entry[0] || !entry[1]) throw new Error(`--entry takes NAME=PATH (got "${entry.join('=')}")`);
}

await build({
  absWorkingDir: projectDir,
  entryPoints:
    entries.length > 0
      ? Object.fromEntries(entries)
      : { main: 'server/main.ts', 'web-main': 'server/web-main.ts', 'worker-main': 'server/worker-main.ts', 'reseal-main': 'server/reseal-main.ts' },
  outdir,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  // A dynamic import stays one (a chunk of its own under chunks/), so what a start does not need
  // (the PostgreSQL driver on SQLite, the OpenTelemetry SDK with tracing off) is never loaded.
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  sourcemap: 'linked',
  logLevel: 'warning',
});

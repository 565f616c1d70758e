/**
 * Bundles the web components (web/) into browser ES modules under `.build/web/`, one file per
 * entry point, each with an external source map. The server serves them as `/assets/<name>.js`.
 * Run directly (`node --import tsx scripts/build-web.ts`) it builds and prints each file's size.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildWeb } from '../server/web-bundle.js';

export { buildWeb };

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const started = Date.now();
  const { files } = await buildWeb();
  for (const file of files) console.log(`${path.relative(process.cwd(), file)}  ${((await stat(file)).size / 1024).toFixed(1)} KiB`);
  console.log(`built in ${Date.now() - started} ms`);
}

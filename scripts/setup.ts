/**
 * Everything `npm install` prepares: the Temporal CLI (found or installed) and the prebuilt
 * workflow bundle. `npm start` and the tests run the same steps when something is missing.
 */
import { ensureProjectTemporalCli, TemporalCliMissingError } from '../server/temporal-cli.js';
import { ensureWebBundle } from '../server/web-bundle.js';
import { ensureWorkflowBundle } from '../server/workflow-bundle.js';

const only = process.argv.includes('--cli-only');

try {
  const cli = await ensureProjectTemporalCli(process.env, (message) => console.log(message));
  console.log(`Temporal CLI ${cli.version}: ${cli.path} (${cli.source === 'installed' ? 'just installed' : `found via ${cli.source}`})`);
  if (!only) {
    const bundle = await ensureWorkflowBundle();
    console.log(`Workflow bundle ${bundle.built ? 'built' : 'up to date'}: ${bundle.codePath}`);
    const web = await ensureWebBundle();
    console.log(`Web bundle ${web.built ? 'built' : 'up to date'}: ${web.outDir}`);
  }
} catch (error) {
  if (error instanceof TemporalCliMissingError) {
    console.error(`\n${error.message}\n`);
    process.exit(1);
  }
  throw error;
}

/**
 * Everything `npm install` prepares: the Temporal CLI (found or installed) and the prebuilt
 * workflow bundle. `npm start` and the tests run the same steps when something is missing.
 */
import { loadConfig } from '../server/config.js';
import { ensureProjectTemporalCli, TemporalCliMissingError } from '../server/temporal/cli.js';
import { loadTemporalDevSettings } from '../server/temporal/dev-server.js';
import { ensureWebBundle } from '../server/web-bundle.js';
import { ensureWorkflowBundles } from '../server/temporal/workflow-bundle.js';

const only = process.argv.includes('--cli-only');

if (process.argv.includes('--print')) {
  // For a real cluster: the commands that register the search attributes the embedded server
  // registers itself, with the configured address and namespace. One attribute per command:
  // given several --name flags, CLI 1.9.1 registers only the first.
  const { searchAttributes } = await loadTemporalDevSettings();
  const { temporal } = loadConfig();
  const target = [`--address ${temporal.address || '<host:port>'}`, `--namespace ${temporal.namespace}`, ...(temporal.apiKey ? ['--api-key "$TEMPORAL_API_KEY"', '--tls'] : [])];
  for (const [name, type] of Object.entries(searchAttributes)) {
    console.log(`temporal operator search-attribute create --name ${name} --type ${type} ${target.join(' ')}`);
  }
  process.exit(0);
}

try {
  const cli = await ensureProjectTemporalCli(process.env, (message) => console.log(message));
  console.log(`Temporal CLI ${cli.version}: ${cli.path} (${cli.source === 'installed' ? 'just installed' : `found via ${cli.source}`})`);
  if (!only) {
    for (const bundle of await ensureWorkflowBundles()) console.log(`Workflow bundle ${bundle.built ? 'built' : 'up to date'}: ${bundle.codePath}`);
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

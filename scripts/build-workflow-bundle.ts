import { ensureWorkflowBundle } from '../server/temporal/workflow-bundle.js';

const started = Date.now();
const bundle = await ensureWorkflowBundle({ force: process.argv.includes('--force') });
console.log(
  bundle.built
    ? `workflow bundle built in ${Date.now() - started} ms: ${bundle.codePath}`
    : `workflow bundle up to date: ${bundle.codePath}`,
);

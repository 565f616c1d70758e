import { ensureWorkflowBundle } from '../server/temporal/workflow-bundle.js';

// The untraced bundle (tracing off, the default) and the traced one (`tracing.otlpEndpoint` set).
for (const tracing of [false, true]) {
  const started = Date.now();
  const bundle = await ensureWorkflowBundle({ force: process.argv.includes('--force'), tracing });
  console.log(bundle.built ? `workflow bundle built in ${Date.now() - started} ms: ${bundle.codePath}` : `workflow bundle up to date: ${bundle.codePath}`);
}

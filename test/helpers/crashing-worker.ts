/**
 * A worker process that kills itself (SIGKILL) right after the first upstream code exchange was
 * answered and its result stored, before the tokens are written: the crash the exchange must survive.
 * Configured like `server/worker-main.ts` (environment and config file).
 */
import { NativeConnection, Worker } from '@temporalio/worker';
import { createActivities } from '../../activities/index.js';
import { loadConfig } from '../../server/config.js';
import { loadCipher } from '../../server/crypto/keys.js';
import { createLogger } from '../../server/log.js';
import { openStore } from '../../server/store/open-store.js';
import { upstreamRedirectUri } from '../../server/upstream-config.js';
import { ensureWorkflowBundle } from '../../server/temporal/workflow-bundle.js';

const config = loadConfig();
const log = createLogger('warn');
const store = await openStore(config.store);
const cipher = await loadCipher(config, log);
const connection = await NativeConnection.connect({ address: config.temporal.address });
const worker = await Worker.create({
  connection,
  namespace: config.temporal.namespace,
  taskQueue: config.temporal.taskQueue,
  workflowBundle: { codePath: (await ensureWorkflowBundle()).codePath },
  activities: createActivities({
    store,
    cipher,
    upstreams: config.upstreams,
    redirectUri: upstreamRedirectUri(config),
    hooks: {
      afterCodeExchange() {
        process.stdout.write('crashing after the code exchange\n');
        process.kill(process.pid, 'SIGKILL');
      },
    },
  }),
});
process.stdout.write('worker running\n');
await worker.run();

import type { Context, Next } from 'koa';
import { OAuthError } from '../errors.js';
import { countFlowAdmission, countFlowRequestWaiting, type FlowAdmission } from '../metrics.js';

/** The error of a request that found the flow queue full, or waited its whole queue time: 503 with `Retry-After`. */
export class FlowServiceBusyError extends OAuthError {
  constructor(retryAfterSeconds: number) {
    super(503, 'temporarily_unavailable', 'the consent service is busy with other sign-ins; your sign-in will continue where it stopped, try again in a moment', {
      'Retry-After': String(retryAfterSeconds),
    });
  }
}

/** How many requests that wait on Temporal run at once, and how many more wait their turn, and for how long. */
export interface FlowAdmissionLimits {
  concurrency: number;
  queue: number;
  queueTimeoutMs: number;
}

/**
 * Bounds how many requests below it run at once: `concurrency` run, up to `queue` more wait in
 * order of arrival (each at most `queueTimeoutMs`), and only a request that finds the queue full,
 * or waits out its time, gets {@link FlowServiceBusyError}. A burst of consent steps is so served
 * in turn at the pace Temporal keeps, instead of all of them piling onto Temporal at once and
 * timing out together. A request whose client goes away while it waits leaves the queue.
 */
export function flowAdmission(limits: FlowAdmissionLimits, retryAfterSeconds: number) {
  let running = 0;
  /** The waiting requests' admit callbacks, in order of arrival (a Set iterates in insertion order). */
  const waiting = new Set<() => void>();

  const release = () => {
    const [next] = waiting;
    if (next === undefined) {
      running -= 1;
      return;
    }
    // The slot passes straight to the longest waiting request.
    waiting.delete(next);
    next();
  };

  const waitForTurn = (ctx: Context) =>
    new Promise<void>((resolve, reject) => {
      const done = () => {
        countFlowRequestWaiting(-1);
        waiting.delete(admit);
        clearTimeout(timer);
        ctx.res.off('close', clientGone);
      };
      const refuse = (outcome: FlowAdmission) => {
        done();
        countFlowAdmission(outcome);
        reject(new FlowServiceBusyError(retryAfterSeconds));
      };
      const admit = () => {
        done();
        countFlowAdmission('after_waiting');
        resolve();
      };
      const clientGone = () => refuse('client_gone');
      const timer = setTimeout(() => refuse('wait_timeout'), limits.queueTimeoutMs);
      ctx.res.once('close', clientGone);
      waiting.add(admit);
      countFlowRequestWaiting(1);
    });

  return async function admitFlowRequest(ctx: Context, next: Next): Promise<void> {
    if (running < limits.concurrency && waiting.size === 0) {
      running += 1;
      countFlowAdmission('at_once');
    } else if (waiting.size >= limits.queue) {
      countFlowAdmission('queue_full');
      throw new FlowServiceBusyError(retryAfterSeconds);
    } else {
      await waitForTurn(ctx);
    }
    try {
      await next();
    } finally {
      release();
    }
  };
}

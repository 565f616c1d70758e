import { Context } from '@temporalio/activity';

/**
 * The activity logger when running as an activity (it carries the workflow and activity ids);
 * silent when the same code runs outside one (tests, scripts).
 */
export function activityLog(): { info(message: string, meta?: Record<string, unknown>): void; warn(message: string, meta?: Record<string, unknown>): void } {
  try {
    return Context.current().log;
  } catch {
    return { info() {}, warn() {} };
  }
}

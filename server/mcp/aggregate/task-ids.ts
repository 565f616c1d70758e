import { encodeName, resolvePrefixed } from './upstream-prefix.js';

/**
 * The task id the aggregate endpoint shows for task `taskId` of `upstream` (MCP Tasks, SEP-2663
 * §Task Creation): `<upstream, percent-encoded, dots too>.<task id verbatim>`. The upstream name
 * ends at the first dot, so the id leads back to its upstream without any state in the gateway,
 * and no two (upstream, task) pairs share an id. Not signed: the upstream binds its tasks to the
 * user whose credentials created them, and the gateway only sends an id to an upstream the caller
 * may use.
 */
export function gatewayTaskId(upstream: string, taskId: string): string {
  return `${encodeName(upstream)}.${taskId}`;
}

/** The upstream and its own task id for a gateway task id; `undefined` when it is not one for these upstreams. */
export function resolveTaskId<U extends { name: string }>(taskId: string, upstreams: readonly U[]): { upstream: U; taskId: string } | undefined {
  const target = resolvePrefixed(taskId, '.', upstreams);
  return target ? { upstream: target.upstream, taskId: target.rest } : undefined;
}

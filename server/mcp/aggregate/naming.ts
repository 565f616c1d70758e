import { prefixToolName, resolveToolName } from '../tool-names.js';
import type { McpUpstream } from '../types.js';
import { gatewayResourceUri, resolveResourceUri } from './resource-uris.js';
import { gatewayTaskId, resolveTaskId } from './task-ids.js';

/**
 * How an MCP endpoint shows its upstreams' tool and prompt names and resource URIs, and how it
 * finds the upstream a name or URI the client sent belongs to. Every outward name must resolve
 * back to the upstream it came from.
 */
export interface UpstreamNaming {
  /** The name shown for `name` of `upstream`. */
  name(upstream: McpUpstream, name: string): string;
  /** The upstream and its own name for a shown name; `undefined` when none matches. */
  resolveName(name: string, upstreams: readonly McpUpstream[]): { upstream: McpUpstream; name: string } | undefined;
  /** The URI (or URI template) shown for `uri` of `upstream`. */
  uri(upstream: McpUpstream, uri: string): string;
  /** The upstream and its own URI for a shown URI; `undefined` when none matches. */
  resolveUri(uri: string, upstreams: readonly McpUpstream[]): { upstream: McpUpstream; uri: string } | undefined;
  /** The task id shown for task `taskId` of `upstream` (MCP Tasks, SEP-2663). */
  taskId(upstream: McpUpstream, taskId: string): string;
  /** The upstream and its own task id for a shown one; `undefined` when none matches. */
  resolveTaskId(taskId: string, upstreams: readonly McpUpstream[]): { upstream: McpUpstream; taskId: string } | undefined;
  /** Says how names look, for the error that answers an unknown one (empty, or a clause ending in `; `). */
  hint(kind: 'tool' | 'prompt'): string;
}

/**
 * The aggregate endpoint's naming: `<upstream><separator><name>`, `mcp-upstream://<upstream>/<uri>`
 * and task ids `<upstream>.<task id>`.
 */
export function prefixedNaming(separator: string): UpstreamNaming {
  return {
    name: (upstream, name) => prefixToolName(upstream.name, name, separator),
    resolveName(name, upstreams) {
      const target = resolveToolName(name, upstreams, separator);
      return target ? { upstream: target.upstream, name: target.tool } : undefined;
    },
    uri: (upstream, uri) => gatewayResourceUri(upstream.name, uri),
    resolveUri: (uri, upstreams) => resolveResourceUri(uri, upstreams),
    taskId: (upstream, taskId) => gatewayTaskId(upstream.name, taskId),
    resolveTaskId: (taskId, upstreams) => resolveTaskId(taskId, upstreams),
    hint: (kind) => `${kind === 'tool' ? 'Tool' : 'Prompt'} names have the form <upstream>${separator}<${kind}>; `,
  };
}

/** One upstream's own names and URIs, untouched: everything the client sends belongs to that upstream. */
export const untouchedNaming: UpstreamNaming = {
  name: (_upstream, name) => name,
  resolveName: (name, upstreams) => (upstreams.length === 1 ? { upstream: upstreams[0]!, name } : undefined),
  uri: (_upstream, uri) => uri,
  resolveUri: (uri, upstreams) => (upstreams.length === 1 ? { upstream: upstreams[0]!, uri } : undefined),
  taskId: (_upstream, taskId) => taskId,
  resolveTaskId: (taskId, upstreams) => (upstreams.length === 1 ? { upstream: upstreams[0]!, taskId } : undefined),
  hint: () => '',
};

/** The default text between an upstream's name and its tool's name. */
export const DEFAULT_TOOL_NAME_SEPARATOR = '__';

/** The name the gateway shows for `tool` of `upstream`: `<upstream><separator><tool>`. */
export function prefixToolName(upstream: string, tool: string, separator: string): string {
  return `${upstream}${separator}${tool}`;
}

/**
 * Splits a gateway tool name into the upstream it belongs to and the upstream's own tool name.
 * The longest matching upstream name wins, so names stay unambiguous even when an upstream's
 * name contains the separator. `undefined` when no upstream in the list matches.
 */
export function resolveToolName<U extends { name: string }>(
  name: string,
  upstreams: readonly U[],
  separator: string,
): { upstream: U; tool: string } | undefined {
  let best: { upstream: U; tool: string } | undefined;
  for (const upstream of upstreams) {
    const prefix = upstream.name + separator;
    if (name.length > prefix.length && name.startsWith(prefix) && (!best || upstream.name.length > best.upstream.name.length)) {
      best = { upstream, tool: name.slice(prefix.length) };
    }
  }
  return best;
}

/**
 * Percent-encodes an upstream name, dots included, so that the first `.` (or `/`) after it ends
 * it; the prefix of gateway request states and task ids.
 */
export function encodeName(name: string): string {
  return encodeURIComponent(name).replaceAll('.', '%2E');
}

/**
 * Splits `value` made of a percent-encoded upstream name, `separator`, and the upstream's own
 * value; `undefined` when it has no such shape or names none of `upstreams`.
 */
export function resolvePrefixed<U extends { name: string }>(value: string, separator: string, upstreams: readonly U[]): { upstream: U; rest: string } | undefined {
  const at = value.indexOf(separator);
  if (at <= 0 || at + separator.length >= value.length) return undefined;
  let name: string;
  try {
    name = decodeURIComponent(value.slice(0, at));
  } catch {
    return undefined;
  }
  const upstream = upstreams.find((candidate) => candidate.name === name);
  return upstream ? { upstream, rest: value.slice(at + separator.length) } : undefined;
}

/**
 * The associated data a sealed upstream token is sealed with: the row and column it is stored in,
 * so a sealed token copied to another row or column does not open there. Imports nothing, so the
 * activities (which seal) and the server (which opens and re-seals) share it.
 */

/** Which of a user's upstream tokens. */
export type UpstreamTokenKind = 'access' | 'refresh';

/** `upstream_tokens:<userId>:<upstream>:<kind>`: the label of a user's sealed token at one upstream. */
export function upstreamTokenLabel(userId: string, upstream: string, kind: UpstreamTokenKind): string {
  return `upstream_tokens:${userId}:${upstream}:${kind}`;
}

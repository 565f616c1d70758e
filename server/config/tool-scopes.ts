import type { ConfigReader } from './upstream-auth/kind.js';

/** What the gateway scopes that grant a client one upstream begin with: `mcp:upstream:<name>` (SEP-2350 step-up). */
export const upstreamScopePrefix = 'mcp:upstream:';

/** A tool scope's part after `mcp:upstream:<name>:`. */
const suffixPattern = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * An upstream's `toolScopes`: tool name (as the upstream names it) → the gateway scopes a client's
 * token must carry to call it. Each scope belongs to the upstream, `mcp:upstream:<name>:<suffix>`,
 * so it is granted only with a token for `/mcp` or `/mcp/<name>`, through the consent flow.
 */
export type ToolScopes = Record<string, string[]>;

/** Whether `scope` names a tool scope (`mcp:upstream:<name>:<suffix>`) rather than a whole upstream. */
export function isToolScope(scope: string): boolean {
  return scope.startsWith(upstreamScopePrefix) && scope.indexOf(':', upstreamScopePrefix.length) > upstreamScopePrefix.length;
}

/** The upstream a tool scope belongs to, or undefined when `scope` is not a tool scope. */
export function upstreamOfToolScope(scope: string): string | undefined {
  if (!isToolScope(scope)) return undefined;
  return scope.slice(upstreamScopePrefix.length, scope.indexOf(':', upstreamScopePrefix.length));
}

/**
 * Reads `upstreams[i].toolScopes` of the upstream `upstream`: absent is none; otherwise a mapping
 * whose keys are tool names and whose values are one scope or a list of them, each
 * `mcp:upstream:<upstream>:<suffix>` (suffix: 1-64 of A-Z a-z 0-9 . _ -).
 */
export function parseToolScopes(value: unknown, key: string, upstream: string, read: ConfigReader): ToolScopes | undefined {
  if (value === undefined || value === null) return undefined;
  const entries = Object.entries(read.record(value, key));
  const prefix = `${upstreamScopePrefix}${upstream}:`;
  const parsed: ToolScopes = {};
  for (const [tool, scopes] of entries) {
    if (tool.trim() === '' || tool.length > 128) throw read.error(`${key}: a tool name must be 1-128 characters`);
    const list = typeof scopes === 'string' ? scopes.split(/[\s,]+/).filter(Boolean) : scopes;
    if (!Array.isArray(list) || list.length === 0 || list.some((scope) => typeof scope !== 'string')) {
      throw read.error(`${key}.${tool} must be a scope or a non-empty list of scopes, each ${prefix}<suffix>`);
    }
    for (const scope of list as string[]) {
      if (!scope.startsWith(prefix) || !suffixPattern.test(scope.slice(prefix.length))) {
        throw read.error(`${key}.${tool}: "${scope}" is not a scope of this upstream; write ${prefix}<suffix> (suffix: 1-64 of A-Z a-z 0-9 . _ -), e.g. ${prefix}write`);
      }
    }
    parsed[tool] = [...new Set(list as string[])];
  }
  return entries.length > 0 ? parsed : undefined;
}

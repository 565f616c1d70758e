import { isToolScope, upstreamScopePrefix, type ToolScopes } from '../config/tool-scopes.js';

/** The scope that grants a client `upstream` through `/mcp` and `/mcp/<upstream>`. */
export function upstreamScope(upstream: string): string {
  return `${upstreamScopePrefix}${upstream}`;
}

/** The upstreams the upstream scopes in a space-separated scope string name, in order (tool scopes, `mcp:upstream:<name>:<suffix>`, are not upstream scopes). */
export function upstreamsOfScope(scope: string | undefined): string[] {
  return (scope ?? '')
    .split(' ')
    .filter((entry) => entry.startsWith(upstreamScopePrefix) && entry.length > upstreamScopePrefix.length && !isToolScope(entry))
    .map((entry) => entry.slice(upstreamScopePrefix.length));
}

/** The tool scopes (`mcp:upstream:<name>:<suffix>`) in a space-separated scope string, in order. */
export function toolScopesOfScope(scope: string | undefined): string[] {
  return (scope ?? '').split(' ').filter(isToolScope);
}

/** Which MCP endpoint a protected resource names: the aggregate `/mcp`, or one upstream's `/mcp/<name>`. */
export type McpResourceTarget = { kind: 'aggregate' } | { kind: 'upstream'; upstream: string };

/**
 * The gateway's protected resources (RFC 8707 resource indicators, RFC 9728 metadata): the
 * aggregate endpoint `<base>/mcp` and one endpoint per upstream, `<base>/mcp/<upstream>`. Tokens
 * are bound to exactly one of them.
 */
export interface McpResources {
  /** `<base>/mcp`. */
  readonly aggregate: string;
  /** `<base>/mcp/<upstream>`. */
  of(upstream: string): string;
  /** What `resource` names, or `undefined` when it is not one of this gateway's MCP endpoints. */
  parse(resource: string): McpResourceTarget | undefined;
  /** The resource of a request path (`/mcp` or `/mcp/<upstream>`), or `undefined`. */
  ofPath(path: string): { resource: string; target: McpResourceTarget } | undefined;
  /** The upstream scopes a token for `resource` may carry: every upstream's for `/mcp`, its own for `/mcp/<upstream>`. */
  upstreamScopesOf(resource: string): string[];
  /** The tool scopes (`toolScopes` of the config) a token for `resource` may carry: those of the upstreams it reaches. */
  toolScopesOf(resource: string): string[];
  /** RFC 9728 §3.1: the metadata URL with `/.well-known/oauth-protected-resource` inserted before the path. */
  metadataUrl(resource: string): string;
}

/** Builds {@link McpResources} for a public base URL and the configured upstreams. */
export function mcpResources(base: string, upstreams: readonly { name: string; toolScopes?: ToolScopes | undefined }[]): McpResources {
  const aggregate = `${base}/mcp`;
  const names = new Set(upstreams.map((upstream) => upstream.name));
  const toolScopes = new Map(upstreams.map((upstream) => [upstream.name, [...new Set(Object.values(upstream.toolScopes ?? {}).flat())]]));
  const origin = new URL(base).origin;
  const basePath = new URL(base).pathname.replace(/\/$/, '');
  const parsePath = (path: string): McpResourceTarget | undefined => {
    if (path === '/mcp') return { kind: 'aggregate' };
    const match = /^\/mcp\/([a-z][a-z0-9-]{0,31})$/.exec(path);
    return match?.[1] && names.has(match[1]) ? { kind: 'upstream', upstream: match[1] } : undefined;
  };
  return {
    aggregate,
    of: (upstream) => `${aggregate}/${upstream}`,
    parse(resource) {
      if (!resource.startsWith(`${base}/`)) return undefined;
      return parsePath(resource.slice(base.length));
    },
    ofPath(path) {
      const target = parsePath(path);
      if (!target) return undefined;
      return { resource: target.kind === 'aggregate' ? aggregate : `${aggregate}/${target.upstream}`, target };
    },
    upstreamScopesOf(resource) {
      const target = this.parse(resource);
      if (!target) return [];
      return (target.kind === 'aggregate' ? [...names] : [target.upstream]).map(upstreamScope);
    },
    toolScopesOf(resource) {
      const target = this.parse(resource);
      if (!target) return [];
      return (target.kind === 'aggregate' ? [...names] : [target.upstream]).flatMap((name) => toolScopes.get(name) ?? []);
    },
    metadataUrl(resource) {
      const path = new URL(resource).pathname.slice(basePath.length);
      return `${origin}/.well-known/oauth-protected-resource${basePath}${path}`;
    },
  };
}

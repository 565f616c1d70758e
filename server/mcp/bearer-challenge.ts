/**
 * The scopes an upstream's `WWW-Authenticate` challenge asks for when it refuses a token for
 * `insufficient_scope` (RFC 6750 §3.1, MCP 2026-07-28 Authorization §Scope Challenge Handling);
 * undefined for any other challenge. Reads the `Bearer` challenge's auth-params (RFC 9110 §11.2),
 * quoted or not.
 */
export function insufficientScopeOf(header: string | string[] | undefined): string[] | undefined {
  for (const value of Array.isArray(header) ? header : header === undefined ? [] : [header]) {
    const bearer = /(?:^|,)\s*Bearer\s+(.*)$/is.exec(value)?.[1];
    if (bearer === undefined) continue;
    const params = new Map<string, string>();
    for (const match of bearer.matchAll(/([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))/g)) {
      params.set(match[1]!.toLowerCase(), match[2] !== undefined ? match[2].replace(/\\(.)/g, '$1') : (match[3] ?? ''));
    }
    if (params.get('error') !== 'insufficient_scope') continue;
    return (params.get('scope') ?? '').split(' ').filter((scope) => /^[\x21\x23-\x5b\x5d-\x7e]{1,200}$/.test(scope)).slice(0, 50);
  }
  return undefined;
}

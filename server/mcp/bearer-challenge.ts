/** The auth-params (RFC 9110 §11.2), quoted or not, of each `Bearer` or `DPoP` challenge in a `WWW-Authenticate` header. */
function challengesOf(header: string | string[] | undefined): Map<string, string>[] {
  const found: Map<string, string>[] = [];
  for (const value of Array.isArray(header) ? header : header === undefined ? [] : [header]) {
    for (const challenge of value.split(/(?:^|,)\s*(?=(?:Bearer|DPoP)\s)/i)) {
      const params = /^\s*(?:Bearer|DPoP)\s+(.*)$/is.exec(challenge)?.[1];
      if (params === undefined) continue;
      const map = new Map<string, string>();
      for (const match of params.matchAll(/([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))/g)) {
        map.set(match[1]!.toLowerCase(), match[2] !== undefined ? match[2].replace(/\\(.)/g, '$1') : (match[3] ?? ''));
      }
      found.push(map);
    }
  }
  return found;
}

/**
 * The scopes an upstream's `WWW-Authenticate` challenge asks for when it refuses a token for
 * `insufficient_scope` (RFC 6750 §3.1, RFC 9449 §7.1, MCP 2026-07-28 Authorization §Scope
 * Challenge Handling); undefined for any other challenge. Reads the `Bearer` and `DPoP`
 * challenges' auth-params (RFC 9110 §11.2), quoted or not.
 */
export function insufficientScopeOf(header: string | string[] | undefined): string[] | undefined {
  const params = challengesOf(header).find((challenge) => challenge.get('error') === 'insufficient_scope');
  if (!params) return undefined;
  return (params.get('scope') ?? '').split(' ').filter((scope) => /^[\x21\x23-\x5b\x5d-\x7e]{1,200}$/.test(scope)).slice(0, 50);
}

/** The parts of an upstream's 401 that say why it refused: its `WWW-Authenticate` and `DPoP-Nonce` headers. */
export interface UpstreamChallenge {
  wwwAuthenticate: string | string[] | undefined;
  dpopNonce: string | undefined;
}

/**
 * The nonce a resource server asks DPoP proofs to carry (RFC 9449 §9): a `DPoP` challenge with
 * `error="use_dpop_nonce"` and the nonce in `DPoP-Nonce`; undefined for any other refusal.
 */
export function dpopNonceOf(challenge: UpstreamChallenge | undefined): string | undefined {
  const nonce = challenge?.dpopNonce;
  if (!nonce || !/^[\x21\x23-\x5b\x5d-\x7e]{1,500}$/.test(nonce)) return undefined;
  const asked = challengesOf(challenge.wwwAuthenticate).some((params) => params.get('error') === 'use_dpop_nonce');
  return asked ? nonce : undefined;
}

/** The {@link UpstreamChallenge} of a response's headers (fetch `Headers` or Node's incoming headers). */
export function challengeOf(headers: Headers | Record<string, string | string[] | undefined>): UpstreamChallenge {
  if (headers instanceof Headers) return { wwwAuthenticate: headers.get('www-authenticate') ?? undefined, dpopNonce: headers.get('dpop-nonce') ?? undefined };
  const nonce = headers['dpop-nonce'];
  return { wwwAuthenticate: headers['www-authenticate'], dpopNonce: Array.isArray(nonce) ? nonce[0] : nonce };
}

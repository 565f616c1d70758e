import { errors } from 'oidc-provider';

const loopbackHosts = new Set(['127.0.0.1', '[::1]', 'localhost']);
const forbiddenSchemes = new Set(['javascript:', 'data:', 'vbscript:', 'file:', 'blob:', 'about:']);

/** OpenID Connect Dynamic Client Registration `application_type` (SEP-837). */
export type ApplicationType = 'web' | 'native';

type RedirectKind = 'web' | 'native';

/** What kind of client a redirect URI belongs to: https on a real host is a web app's; loopback http or a private-use scheme a native app's. */
function kindOf(uri: unknown): RedirectKind {
  let url: URL;
  try {
    url = new URL(String(uri));
  } catch {
    throw new errors.InvalidRedirectUri(`${String(uri)} is not an absolute URI`);
  }
  if (url.hash) throw new errors.InvalidRedirectUri(`${url.href} must not have a fragment`);
  if (forbiddenSchemes.has(url.protocol)) throw new errors.InvalidRedirectUri(`${url.protocol} redirect URIs are not allowed`);
  if (url.protocol === 'https:') return loopbackHosts.has(url.hostname) ? 'native' : 'web';
  if (url.protocol === 'http:') {
    if (loopbackHosts.has(url.hostname)) return 'native';
    throw new errors.InvalidRedirectUri('http redirect URIs must use a loopback host (127.0.0.1, [::1] or localhost); use https otherwise');
  }
  // A private-use scheme (RFC 8252 §7.1), e.g. com.example.app:/callback.
  return 'native';
}

/** The `application_type` the client declared in its registration request, when it is a dynamic registration that declared one. */
function declaredApplicationType(ctx: unknown): unknown {
  const oidc = (ctx as { oidc?: { route?: string; body?: Record<string, unknown> } } | undefined)?.oidc;
  return oidc?.route === 'registration' ? oidc.body?.['application_type'] : undefined;
}

/**
 * Redirect URIs the gateway accepts (OAuth 2.1 §2.3.1, RFC 8252 §7, OpenID Connect Registration
 * `application_type`, SEP-837): a `web` client registers https URIs on a non-loopback host; a
 * `native` client loopback http URIs (any port) or private-use schemes. Never a script or data
 * URL, never a fragment. A client that declares no `application_type` (clients of earlier MCP
 * revisions) gets the one its redirect URIs show, `native` for loopback or private-use ones, and
 * is recorded with it; URIs of both kinds without a declaration are refused.
 */
export function validateRedirectUris(ctx: unknown, key: string, value: unknown, metadata?: Record<string, unknown>): void {
  if (key !== 'redirect_uris' || !Array.isArray(value)) return;
  const kinds = new Set(value.map(kindOf));
  const declared = declaredApplicationType(ctx);
  // The provider fills in `web` when the client says nothing; only a registration request shows
  // what was said. Elsewhere (client ID metadata documents, configured clients) a `web` that the
  // redirect URIs contradict is read as unset.
  let applicationType = (metadata?.['application_type'] ?? 'web') as ApplicationType;
  if (declared === undefined && applicationType === 'web' && kinds.size === 1 && kinds.has('native')) applicationType = 'native';
  if (metadata) metadata['application_type'] = applicationType;
  for (const uri of value) {
    const kind = kindOf(uri);
    if (applicationType === 'web' && kind !== 'web') {
      throw new errors.InvalidRedirectUri(
        `${String(uri)} is a native app's redirect URI: web clients (application_type "web") use https on a non-loopback host; register with application_type "native" for loopback or private-use scheme URIs`,
      );
    }
    if (applicationType === 'native' && kind !== 'native') {
      throw new errors.InvalidRedirectUri(
        `${String(uri)} is a web redirect URI: native clients (application_type "native") use loopback http (http://127.0.0.1:<port>/…) or a private-use scheme; register with application_type "web" for https URIs`,
      );
    }
  }
}

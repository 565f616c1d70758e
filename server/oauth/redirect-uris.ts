import { errors } from 'oidc-provider';

const loopbackHosts = new Set(['127.0.0.1', '[::1]', 'localhost']);
const forbiddenSchemes = new Set(['javascript:', 'data:', 'vbscript:', 'file:', 'blob:', 'about:']);

/**
 * Redirect URIs the gateway accepts at registration (OAuth 2.1 §2.3.1, RFC 8252 §7): https, http
 * on a loopback host only, or a native app's private-use scheme; never a script or data URL.
 */
export function validateRedirectUris(_ctx: unknown, key: string, value: unknown): void {
  if (key !== 'redirect_uris' || !Array.isArray(value)) return;
  for (const uri of value) {
    let url: URL;
    try {
      url = new URL(String(uri));
    } catch {
      throw new errors.InvalidRedirectUri(`${String(uri)} is not an absolute URI`);
    }
    if (url.protocol === 'https:') continue;
    if (url.protocol === 'http:') {
      if (loopbackHosts.has(url.hostname)) continue;
      throw new errors.InvalidRedirectUri('http redirect URIs must use a loopback host (127.0.0.1, [::1] or localhost); use https otherwise');
    }
    if (forbiddenSchemes.has(url.protocol)) throw new errors.InvalidRedirectUri(`${url.protocol} redirect URIs are not allowed`);
  }
}

import { describe, expect, it } from 'vitest';
import { challengeOf, dpopNonceOf, insufficientScopeOf } from '../../../server/mcp/bearer-challenge.js';

describe('insufficientScopeOf', () => {
  it('reads the scopes of an insufficient_scope challenge, quoted or not, among other parameters', () => {
    expect(insufficientScopeOf('Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="https://x/.well-known/oauth-protected-resource"')).toEqual([
      'files:read',
      'files:write',
    ]);
    expect(insufficientScopeOf('Bearer realm="x",error=insufficient_scope,scope=admin')).toEqual(['admin']);
    expect(insufficientScopeOf(['Basic realm="x"', 'Bearer error="insufficient_scope", scope="a"'])).toEqual(['a']);
  });

  it('reads a DPoP challenge (RFC 9449 §7.1) as it reads a Bearer one, each challenge of a header on its own', () => {
    expect(insufficientScopeOf('DPoP algs="ES256", error="insufficient_scope", scope="a b"')).toEqual(['a', 'b']);
    expect(insufficientScopeOf('Bearer error="invalid_token", DPoP error="insufficient_scope", scope="c"')).toEqual(['c']);
    expect(insufficientScopeOf('Bearer error="insufficient_scope", scope="d", DPoP error="invalid_token", scope="e"')).toEqual(['d']);
  });

  it('gives an empty list for insufficient_scope without scope, and undefined for any other challenge', () => {
    expect(insufficientScopeOf('Bearer error="insufficient_scope"')).toEqual([]);
    expect(insufficientScopeOf('Bearer error="invalid_token", scope="a"')).toBeUndefined();
    expect(insufficientScopeOf('Basic realm="x"')).toBeUndefined();
    expect(insufficientScopeOf(undefined)).toBeUndefined();
  });

  it('drops scope tokens that RFC 6749 §3.3 does not allow and keeps at most 50', () => {
    expect(insufficientScopeOf('Bearer error="insufficient_scope", scope="ok bad\\"quote"')).toEqual(['ok']);
    const many = Array.from({ length: 60 }, (_, i) => `s${i}`).join(' ');
    expect(insufficientScopeOf(`Bearer error="insufficient_scope", scope="${many}"`)).toHaveLength(50);
  });
});

describe('dpopNonceOf', () => {
  it('gives the nonce of a DPoP use_dpop_nonce challenge (RFC 9449 §9) with a DPoP-Nonce header', () => {
    expect(dpopNonceOf({ wwwAuthenticate: 'DPoP error="use_dpop_nonce", error_description="a nonce is required"', dpopNonce: 'n-1' })).toBe('n-1');
    expect(dpopNonceOf(challengeOf(new Headers({ 'www-authenticate': 'Bearer realm="x", DPoP error=use_dpop_nonce', 'dpop-nonce': 'n-2' })))).toBe('n-2');
    expect(dpopNonceOf(challengeOf({ 'www-authenticate': ['DPoP error="use_dpop_nonce"'], 'dpop-nonce': 'n-3' }))).toBe('n-3');
  });

  it('gives undefined for any other refusal, a missing nonce, or a nonce that is not a plain token', () => {
    expect(dpopNonceOf({ wwwAuthenticate: 'DPoP error="invalid_token"', dpopNonce: 'n-1' })).toBeUndefined();
    expect(dpopNonceOf({ wwwAuthenticate: 'DPoP error="use_dpop_nonce"', dpopNonce: undefined })).toBeUndefined();
    expect(dpopNonceOf({ wwwAuthenticate: undefined, dpopNonce: 'n-1' })).toBeUndefined();
    expect(dpopNonceOf({ wwwAuthenticate: 'DPoP error="use_dpop_nonce"', dpopNonce: 'has "quotes"' })).toBeUndefined();
    expect(dpopNonceOf(undefined)).toBeUndefined();
  });
});

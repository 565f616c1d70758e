import { describe, expect, it } from 'vitest';
import { insufficientScopeOf } from '../../../server/mcp/bearer-challenge.js';

describe('insufficientScopeOf', () => {
  it('reads the scopes of an insufficient_scope challenge, quoted or not, among other parameters', () => {
    expect(insufficientScopeOf('Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="https://x/.well-known/oauth-protected-resource"')).toEqual([
      'files:read',
      'files:write',
    ]);
    expect(insufficientScopeOf('Bearer realm="x",error=insufficient_scope,scope=admin')).toEqual(['admin']);
    expect(insufficientScopeOf(['Basic realm="x"', 'Bearer error="insufficient_scope", scope="a"'])).toEqual(['a']);
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

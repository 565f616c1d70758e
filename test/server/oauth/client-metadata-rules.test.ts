import { describe, expect, it } from 'vitest';
import { validateClientMetadata, validateClientName } from '../../../server/oauth/client-metadata-rules.js';

/** The OAuth error a check throws: its code and description. */
function refusal(check: () => void): { error?: string; error_description?: string } | undefined {
  try {
    check();
  } catch (error) {
    return { error: (error as { error?: string }).error, error_description: (error as { error_description?: string }).error_description };
  }
  return undefined;
}

describe('client metadata rules', () => {
  it.each(['\u202eexe.drowssap', 'Official\u2066 App\u2069', 'a\u0000b', 'Admin\u001b[2J', 'two\nlines', 'x\u0085y', 'x\u200fy'])('refuses the client name %j', (name) => {
    const expected = { error: 'invalid_client_metadata', error_description: 'client_name must not contain control characters or bidirectional formatting characters' };
    expect(refusal(() => validateClientName(name))).toEqual(expected);
    expect(refusal(() => validateClientMetadata(undefined, 'client_name', name))).toEqual(expected);
  });

  it.each(['Claude Desktop', '<script>alert(1)</script>', '[Click](javascript:alert(1))', 'Ünïcödé 𝕏 名前', undefined])('accepts the client name %j (escaping is for where it is shown)', (name) => {
    expect(() => validateClientName(name)).not.toThrow();
  });

  it('still applies the redirect URI policy', () => {
    expect(refusal(() => validateClientMetadata(undefined, 'redirect_uris', ['javascript:alert(1)']))?.error).toBe('invalid_redirect_uri');
  });
});

import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../server/config.js';

describe('dev identity mode', () => {
  it('is refused on a loopback bind when the public URL is not loopback', () => {
    expect(() => loadConfig({ env: { GATEWAY_HOST: '127.0.0.1', GATEWAY_PUBLIC_URL: 'https://gateway.example.com' } })).toThrow(
      new ConfigError('identity.mode "dev" lets anyone type any user name; it is refused unless http.publicUrl is a loopback address too (got "gateway.example.com")'),
    );
  });

  it('is refused on a host name that only starts with 127.', () => {
    expect(() => loadConfig({ env: { GATEWAY_HOST: '127.attacker.example' } })).toThrow(
      new ConfigError('identity.mode "dev" lets anyone type any user name; it is refused unless http.host is a loopback address (got "127.attacker.example")'),
    );
  });

  it('is refused on a public URL whose host name only starts with 127.', () => {
    expect(() => loadConfig({ env: { GATEWAY_PUBLIC_URL: 'https://127.0.0.1.nip.example' } })).toThrow(
      new ConfigError('identity.mode "dev" lets anyone type any user name; it is refused unless http.publicUrl is a loopback address too (got "127.0.0.1.nip.example")'),
    );
  });

  it('does not take a plain-http host name starting with 127. for loopback', () => {
    expect(() => loadConfig({ env: { GATEWAY_IDENTITY_MODE: 'oidc', GATEWAY_OIDC_ISSUER: 'https://idp.example', GATEWAY_OIDC_CLIENT_ID: 'gw', GATEWAY_PUBLIC_URL: 'http://127.0.0.1.example' } })).toThrow(
      new ConfigError('http.publicUrl must use https unless it is a loopback address'),
    );
  });

  it.each([
    ['127.0.0.1', 'http://localhost:3000'],
    ['127.0.0.2', 'http://127.0.0.2:3000'],
    ['::1', 'http://[::1]:3000'],
    ['localhost', 'http://localhost:3000'],
  ])('is accepted on host %s with public URL %s', (host, publicUrl) => {
    expect(loadConfig({ env: { GATEWAY_HOST: host, GATEWAY_PUBLIC_URL: publicUrl } }).identity).toEqual({ mode: 'dev' });
  });
});

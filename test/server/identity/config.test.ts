import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../server/config.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cg-identity-config-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Loads a config whose `identity:` section is `identity` (YAML, indented under the key). */
async function loadIdentity(identity: string, env: Record<string, string> = {}) {
  const file = path.join(dir, 'gateway.yml');
  await writeFile(file, `identity:\n${identity}`);
  return loadConfig({ file, env });
}

describe('identity configuration', () => {
  it('refuses an oidc issuer over plain http unless it is loopback', async () => {
    const oidc = (issuer: string) => loadIdentity(`  mode: oidc\n  oidc:\n    issuer: "${issuer}"\n    clientId: gateway\n`);
    await expect(oidc('http://idp.example.com')).rejects.toThrow(new ConfigError('identity.oidc.issuer must use https unless it is a loopback address'));
    await expect(oidc('not a url')).rejects.toThrow('identity.oidc.issuer must be an http(s) URL (got "not a url")');
    expect((await oidc('http://127.0.0.1:9000')).identity.oidc?.issuer).toBe('http://127.0.0.1:9000');
    expect((await oidc('http://[::1]:9000')).identity.oidc?.issuer).toBe('http://[::1]:9000');
  });

  it('takes the client secret from the environment and defaults the scopes to openid', async () => {
    const config = await loadIdentity('  mode: oidc\n  oidc:\n    issuer: https://idp.example.com\n    clientId: gateway\n', { GATEWAY_OIDC_CLIENT_SECRET: 's3cret-s3cret' });
    expect(config.identity).toEqual({ mode: 'oidc', oidc: { issuer: 'https://idp.example.com', clientId: 'gateway', clientSecret: 's3cret-s3cret', scopes: ['openid'] } });
  });

  it('needs openid among the oidc scopes', async () => {
    await expect(loadIdentity('  mode: oidc\n  oidc:\n    issuer: https://idp.example.com\n    clientId: gateway\n    scopes: [profile, email]\n')).rejects.toThrow(
      new ConfigError('identity.oidc.scopes must include "openid"'),
    );
  });

  it('accepts exact addresses and CIDR blocks as trusted proxies, and lower-cases the header name', async () => {
    const config = await loadIdentity('  mode: header\n  header:\n    name: X-Auth-Request-User\n    trustedProxies: [10.0.0.5, "fd00::/8", 192.168.0.0/16]\n');
    expect(config.identity).toEqual({ mode: 'header', header: { name: 'x-auth-request-user', trustedProxies: ['10.0.0.5', 'fd00::/8', '192.168.0.0/16'] } });
  });

  it('names a trusted proxy that is not an address', async () => {
    await expect(loadIdentity('  mode: header\n  header:\n    trustedProxies: [proxy.internal]\n')).rejects.toThrow(
      new ConfigError('identity.header.trustedProxies: "proxy.internal" is not an IP address or CIDR block'),
    );
  });

  it('refuses a header name that is not an HTTP token', async () => {
    await expect(loadIdentity('  mode: header\n  header:\n    name: "x user"\n    trustedProxies: [10.0.0.5]\n')).rejects.toThrow(
      new ConfigError('identity.header.name must be an HTTP header name (got "x user")'),
    );
  });
});

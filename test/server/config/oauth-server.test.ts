import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../server/config.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function load(yaml: string) {
  const dir = await mkdtemp(path.join(tmpdir(), 'cg-oauth-config-'));
  dirs.push(dir);
  const file = path.join(dir, 'gateway.yml');
  await writeFile(file, yaml);
  return () => loadConfig({ env: { GATEWAY_DATA_DIR: dir }, file });
}

describe("the OAuth server's settings", () => {
  it('defaults: every registration way on, refresh tokens to every client registered for them, bearer tokens accepted, no enterprise IdP', async () => {
    const { oauth } = (await load('logLevel: info\n'))();
    expect(oauth.registration).toEqual({ preRegistered: true, clientMetadataDocuments: true, dynamic: true });
    expect(oauth.refreshTokens).toBe('client');
    expect(oauth.dpop).toEqual({ required: false, requireNonce: false });
    expect(oauth.enterpriseIdps).toEqual([]);
  });

  it('reads each switch, and the older keys where the new ones are absent', async () => {
    const nested = (await load('oauth:\n  registration: { preRegistered: false, clientMetadataDocuments: false, dynamic: false }\n  refreshTokens: offline_access\n  dpop: { required: true, requireNonce: true }\n'))();
    expect(nested.oauth.registration).toEqual({ preRegistered: false, clientMetadataDocuments: false, dynamic: false });
    expect(nested.oauth.refreshTokens).toBe('offline_access');
    expect(nested.oauth.dpop).toEqual({ required: true, requireNonce: true });
    const older = (await load('oauth:\n  dynamicRegistration: false\n  clientMetadataDocuments: false\n'))();
    expect(older.oauth.registration).toEqual({ preRegistered: true, clientMetadataDocuments: false, dynamic: false });
  });

  it('reads enterprise IdPs, keeping the issuer exactly as written', async () => {
    const { oauth } = (await load('oauth:\n  enterprise:\n    idps:\n      - { issuer: "https://idp.example.com", jwksUrl: "https://idp.example.com/jwks" }\n      - { issuer: "http://127.0.0.1:4000", jwksUrl: "http://127.0.0.1:4000/jwks" }\n'))();
    expect(oauth.enterpriseIdps).toEqual([
      { issuer: 'https://idp.example.com', jwksUrl: 'https://idp.example.com/jwks' },
      { issuer: 'http://127.0.0.1:4000', jwksUrl: 'http://127.0.0.1:4000/jwks' },
    ]);
  });

  it.each([
    ['oauth:\n  registration: { dynamic: "no" }\n', 'oauth.registration.dynamic must be true or false'],
    ['oauth:\n  refreshTokens: always\n', 'oauth.refreshTokens'],
    ['oauth:\n  dpop: { required: 1 }\n', 'oauth.dpop.required must be true or false'],
    ['oauth:\n  enterprise: { idps: { issuer: x } }\n', 'oauth.enterprise.idps must be a list'],
    ['oauth:\n  enterprise: { idps: [ { issuer: "https://idp.example.com" } ] }\n', 'oauth.enterprise.idps[0].jwksUrl is required'],
    ['oauth:\n  enterprise: { idps: [ { issuer: "https://idp.example.com", jwksUrl: "http://idp.example.com/jwks" } ] }\n', 'must use https unless it is a loopback address'],
  ])('refuses %j with a clear error', async (yaml, message) => {
    const loading = await load(yaml);
    expect(loading).toThrow(ConfigError);
    expect(loading).toThrow(message);
  });
});

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig, needsUserConnection } from '../../../server/config.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** The upstreams of a config file listing `entries` (YAML flow mappings). */
async function upstreamsOf(...entries: string[]) {
  const dir = await mkdtemp(path.join(tmpdir(), 'cg-config-'));
  dirs.push(dir);
  const file = path.join(dir, 'gateway.yml');
  const identity = ['identity:', '  mode: oidc', '  oidc: {issuer: "https://idp.example", clientId: gw}'];
  await writeFile(file, [...(entries.some((entry) => entry.includes('dev-mode')) ? [] : identity), 'upstreams:', ...entries.map((entry) => `  - ${entry}`)].join('\n'));
  return loadConfig({ file, env: {} }).upstreams;
}

describe('upstream auth token-exchange and enterprise', () => {
  it('reads both kinds; neither needs a per-user connection', async () => {
    const [wiki, crm] = await upstreamsOf(
      '{name: wiki, mcpUrl: "https://wiki.example/mcp", auth: {type: token-exchange, tokenEndpoint: "https://as.wiki.example/token", issuer: "https://as.wiki.example", clientId: gw, clientSecret: s}}',
      '{name: crm, mcpUrl: "https://crm.example/mcp", auth: {type: enterprise, issuer: "https://as.crm.example", tokenEndpoint: "https://as.crm.example/token", clientId: gw-crm, authMethod: none, resource: false}}',
    );
    expect(wiki?.auth).toEqual({
      type: 'token-exchange',
      tokenEndpoint: 'https://as.wiki.example/token',
      issuer: 'https://as.wiki.example',
      resource: true,
      subjectToken: 'id_token',
      client: { clientId: 'gw', clientSecret: 's', authMethod: 'client_secret_basic' },
    });
    expect(crm?.auth).toEqual({ type: 'enterprise', issuer: 'https://as.crm.example', tokenEndpoint: 'https://as.crm.example/token', resource: false, client: { clientId: 'gw-crm', authMethod: 'none' } });
    expect(needsUserConnection(wiki!.auth)).toBe(false);
    expect(needsUserConnection(crm!.auth)).toBe(false);
  });

  it('refuses missing or malformed settings with the key that is wrong', async () => {
    await expect(upstreamsOf('{name: w, mcpUrl: "https://w.example/mcp", auth: {type: token-exchange, clientId: gw}}')).rejects.toThrow('upstreams[0].auth.tokenEndpoint is required');
    await expect(upstreamsOf('{name: w, mcpUrl: "https://w.example/mcp", auth: {type: token-exchange, tokenEndpoint: "https://as.example/token"}}')).rejects.toThrow('upstreams[0].auth.clientId is required');
    await expect(upstreamsOf('{name: w, mcpUrl: "https://w.example/mcp", auth: {type: token-exchange, tokenEndpoint: "https://as.example/token", clientId: gw, subjectToken: saml}}')).rejects.toThrow('upstreams[0].auth.subjectToken');
    await expect(upstreamsOf('{name: c, mcpUrl: "https://c.example/mcp", auth: {type: enterprise, tokenEndpoint: "https://as.example/token", clientId: gw}}')).rejects.toThrow('upstreams[0].auth.issuer is required');
    await expect(upstreamsOf('{name: c, mcpUrl: "https://c.example/mcp", auth: {type: enterprise, issuer: "ftp://as.example", tokenEndpoint: "https://as.example/token", clientId: gw}}')).rejects.toThrow('upstreams[0].auth.issuer must be an http(s) URL');
    await expect(upstreamsOf('{name: c, mcpUrl: "https://c.example/mcp", auth: {type: enterprise, issuer: "https://as.example", tokenEndpoint: "https://as.example/token", clientId: gw, authMethod: client_secret_post}}')).rejects.toThrow(
      'upstreams[0].auth.authMethod client_secret_post needs upstreams[0].auth.clientSecret',
    );
  });

  it('refuses them outside the oidc identity mode', async () => {
    await expect(upstreamsOf('{name: dev-mode, mcpUrl: "https://w.example/mcp", auth: {type: enterprise, issuer: "https://as.example", tokenEndpoint: "https://as.example/token", clientId: gw}}')).rejects.toThrow(
      'upstreams[0].auth.type enterprise needs identity.mode "oidc"',
    );
  });
});

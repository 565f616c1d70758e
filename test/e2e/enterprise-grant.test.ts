import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoUpstream, type DemoUpstream } from '../../server/demo/demo-upstream.js';
import { freePort } from '../helpers/free-port.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { temporalUnavailable } from '../helpers/temporal.js';

const jwtBearer = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const idpIssuer = 'https://idp.enterprise.test';

/** A test enterprise IdP: its key signs ID-JAGs, its JWKS is served on loopback. */
interface TestIdp {
  jwksUrl: string;
  sign(claims: Record<string, unknown>, options?: { typ?: string; key?: CryptoKey; exp?: number }): Promise<string>;
  close(): Promise<void>;
}

async function startTestIdp(): Promise<TestIdp> {
  const { privateKey, publicKey } = (await generateKeyPair('ES256')) as { privateKey: CryptoKey; publicKey: CryptoKey };
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'idp-1', alg: 'ES256', use: 'sig' };
  const server: Server = createServer((req, res) => {
    if (req.url === '/jwks') res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    jwksUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`,
    sign: (claims, options = {}) =>
      new SignJWT({ jti: randomUUID(), ...claims })
        .setProtectedHeader({ alg: 'ES256', typ: options.typ ?? 'oauth-id-jag+jwt', kid: 'idp-1' })
        .setIssuedAt()
        .setExpirationTime(options.exp ?? Math.floor(Date.now() / 1000) + 300)
        .sign(options.key ?? privateKey),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe.skipIf(Boolean(temporalUnavailable))('Enterprise-Managed Authorization: the JWT bearer grant with an ID-JAG', () => {
  let idp: TestIdp;
  let demo: DemoUpstream;
  let gateway: TestGateway;
  let clientId: string;
  const clientSecret = 'enterprise-client-secret-0123456789';

  beforeAll(async () => {
    idp = await startTestIdp();
    demo = await startDemoUpstream({ host: '127.0.0.1', port: 0 });
    const unreachable = `http://127.0.0.1:${await freePort()}`;
    gateway = await startTestGateway((config) => {
      config.upstreams = [
        { name: 'demo', displayName: 'Demo', mcpUrl: demo.url, auth: { type: 'none' }, scopes: [] },
        // Needs each user's own connection, which nobody has here.
        { name: 'github', displayName: 'GitHub', mcpUrl: `${unreachable}/mcp`, auth: { type: 'oauth', issuer: unreachable, client: { kind: 'static', clientId: 'gw', authMethod: 'none' }, resource: true }, scopes: [] },
      ];
      config.clients = [{ clientId: 'enterprise-agent', clientName: 'Enterprise agent', redirectUris: ['http://127.0.0.1:9/callback'], clientSecret }];
      config.oauth.enterpriseIdps = [{ issuer: idpIssuer, jwksUrl: idp.jwksUrl }];
    });
    clientId = 'enterprise-agent';
  });

  afterAll(async () => {
    await gateway?.close();
    await demo?.close();
    await idp?.close();
  });

  const exchange = async (assertion: string, extra: Record<string, string> = {}, dpop?: string) => {
    const response = await fetch(`${gateway.url}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`,
        ...(dpop ? { dpop } : {}),
      },
      body: new URLSearchParams({ grant_type: jwtBearer, assertion, ...extra }),
    });
    return { status: response.status, cacheControl: response.headers.get('cache-control'), body: (await response.json()) as Record<string, unknown> };
  };
  const claims = (extra: Record<string, unknown> = {}) => ({ iss: idpIssuer, aud: gateway.url, sub: 'employee-1', client_id: clientId, resource: `${gateway.url}/mcp`, ...extra });
  const initialize = (path: string, accessToken: string) =>
    fetch(`${gateway.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 21, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'ema-test', version: '1' } } }),
    });

  it('advertises the grant type', async () => {
    const metadata = (await (await fetch(`${gateway.url}/.well-known/oauth-authorization-server`)).json()) as { grant_types_supported: string[] };
    expect(metadata.grant_types_supported).toContain(jwtBearer);
  });

  it('mints a gateway token from an ID-JAG with no browser, records the consent and its audit entry, and refuses the same ID-JAG again', async () => {
    const assertion = await idp.sign(claims());
    const minted = await exchange(assertion);
    expect(minted.status, JSON.stringify(minted.body)).toBe(200);
    expect(minted.cacheControl).toContain('no-store');
    expect(minted.body).toMatchObject({ token_type: 'Bearer', access_token: expect.any(String), scope: 'mcp:tools' });
    expect((await initialize('/mcp', String(minted.body.access_token))).status).toBe(200);

    const consent = await gateway.store.getConsent('employee-1', clientId);
    expect(consent?.upstreams.sort()).toEqual(['demo', 'github']);
    const audit = await gateway.store.queryAudit({ userId: 'employee-1', clientId, limit: 20 });
    expect(audit.map((entry) => ({ kind: entry.kind, actor: entry.actor }))).toContainEqual({ kind: 'consent.approved', actor: `enterprise-idp:${idpIssuer}` });

    const replay = await exchange(assertion);
    expect(replay.status).toBe(400);
    expect(replay.body.error).toBe('invalid_grant');
  });

  it('refuses forged, expired, mistyped, misaddressed and misissued ID-JAGs with invalid_grant', async () => {
    const { privateKey: forger } = (await generateKeyPair('ES256')) as { privateKey: CryptoKey };
    const refused = [
      await idp.sign(claims(), { key: forger }),
      await idp.sign(claims(), { exp: Math.floor(Date.now() / 1000) - 600 }),
      await idp.sign(claims(), { typ: 'JWT' }),
      await idp.sign(claims({ aud: 'https://another-server.example' })),
      await idp.sign(claims({ iss: 'https://untrusted-idp.example' })),
      await idp.sign(claims({ client_id: 'another-client' })),
      await idp.sign(claims({ resource: 'https://elsewhere.example/mcp' })),
      'not-a-jwt',
    ];
    for (const assertion of refused) {
      const answer = await exchange(assertion);
      expect(answer.status, JSON.stringify(answer.body)).toBe(400);
      expect(answer.body.error).toBe('invalid_grant');
    }
    expect((await exchange(await idp.sign(claims({ resource: `${gateway.url}/mcp/demo` })), { resource: `${gateway.url}/mcp` })).body.error).toBe('invalid_grant');
  });

  it('binds the token to the DPoP key of a proof sent with the grant', async () => {
    const { privateKey, publicKey } = (await generateKeyPair('ES256')) as { privateKey: CryptoKey; publicKey: CryptoKey };
    const jwk = await exportJWK(publicKey);
    const proof = (htu: string, ath?: string) =>
      new SignJWT({ htm: 'POST', htu, jti: randomUUID(), ...(ath ? { ath } : {}) }).setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk }).setIssuedAt().sign(privateKey);
    const minted = await exchange(await idp.sign(claims({ sub: 'employee-3' })), {}, await proof(`${gateway.url}/token`));
    expect(minted.status, JSON.stringify(minted.body)).toBe(200);
    expect(minted.body.token_type).toBe('DPoP');
    const accessToken = String(minted.body.access_token);
    expect((await initialize('/mcp', accessToken)).status).toBe(401);
    const bound = await fetch(`${gateway.url}/mcp`, {
      method: 'POST',
      headers: {
        authorization: `DPoP ${accessToken}`,
        dpop: await proof(`${gateway.url}/mcp`, createHash('sha256').update(accessToken).digest('base64url')),
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'ema-test', version: '1' } } }),
    });
    expect(bound.status).toBe(200);
    const badProof = await exchange(await idp.sign(claims({ sub: 'employee-3' })), {}, await proof(`${gateway.url}/elsewhere`));
    expect(badProof.status).toBe(400);
    expect(badProof.body.error).toBe('invalid_dpop_proof');
  });

  it('a token for an upstream the user has not connected still gets a connect link on first use', async () => {
    const minted = await exchange(await idp.sign(claims({ sub: 'employee-2', resource: `${gateway.url}/mcp/github` })));
    expect(minted.status, JSON.stringify(minted.body)).toBe(200);
    const answer = (await (await initialize('/mcp/github', String(minted.body.access_token))).json()) as { error: { code: number; data: { elicitations: { url: string }[] } } };
    expect(answer.error.code).toBe(-32042);
    expect(answer.error.data.elicitations[0]?.url).toContain(`${gateway.url}/connect?elicitationId=`);
  });
});

import { createHash, randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizationUrl, ConsentDriver, createPkce, initializeMcp, postForm, registerClient } from '../helpers/consent-driver.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { temporalUnavailable } from '../helpers/temporal.js';

/** A DPoP key pair of a client (RFC 9449) and the proofs it signs. */
interface DpopKey {
  proof(htm: string, htu: string, options?: { accessToken?: string; iat?: number; nonce?: string; typ?: string }): Promise<string>;
}

async function dpopKey(): Promise<DpopKey> {
  const { privateKey, publicKey } = (await generateKeyPair('ES256')) as { privateKey: CryptoKey; publicKey: CryptoKey };
  const jwk: JWK = await exportJWK(publicKey);
  return {
    proof: (htm, htu, options = {}) =>
      new SignJWT({ htm, htu, jti: randomUUID(), ...(options.nonce ? { nonce: options.nonce } : {}), ...(options.accessToken ? { ath: createHash('sha256').update(options.accessToken).digest('base64url') } : {}) })
        .setProtectedHeader({ alg: 'ES256', typ: options.typ ?? 'dpop+jwt', jwk })
        .setIssuedAt(options.iat ?? Math.floor(Date.now() / 1000))
        .sign(privateKey),
  };
}

const upstreams = [{ name: 'alpha', displayName: 'Alpha', mcpUrl: 'http://127.0.0.1:9/mcp', auth: { type: 'none' as const }, scopes: [] }];

/** Runs the consent flow and the code exchange, with a DPoP proof at the token endpoint when `key` is given. */
/** With `key`, a proof the server refuses with `use_dpop_nonce` is sent again once with the nonce it named (RFC 9449 §8); `nonceAsked` says whether it did. */
async function token(gatewayUrl: string, key?: DpopKey): Promise<{ accessToken: string; tokenType: string; nonceAsked: boolean }> {
  const redirectUri = 'http://127.0.0.1:9/callback';
  const clientId = await registerClient(gatewayUrl, [redirectUri], 'DPoP test client');
  const pkce = createPkce();
  const back = await new ConsentDriver(gatewayUrl).consent(authorizationUrl(gatewayUrl, { clientId, redirectUri, pkce }), { user: 'dpop-user' });
  const form = new URLSearchParams({ grant_type: 'authorization_code', code: back.searchParams.get('code') ?? '', code_verifier: pkce.verifier, redirect_uri: redirectUri, client_id: clientId, resource: `${gatewayUrl}/mcp` });
  const send = async (nonce?: string) => {
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
    if (key) headers.dpop = await key.proof('POST', `${gatewayUrl}/token`, nonce ? { nonce } : {});
    const response = await fetch(`${gatewayUrl}/token`, { method: 'POST', headers, body: form });
    return { response, body: (await response.json()) as { access_token: string; token_type: string; error?: string } };
  };
  let answer = await send();
  const nonce = answer.response.headers.get('dpop-nonce');
  const nonceAsked = answer.response.status === 400 && answer.body.error === 'use_dpop_nonce';
  if (nonceAsked && nonce) answer = await send(nonce);
  expect(answer.response.status, JSON.stringify(answer.body)).toBe(200);
  return { accessToken: answer.body.access_token, tokenType: answer.body.token_type, nonceAsked };
}

/** `POST /mcp` (initialize) with an Authorization header and, when given, a DPoP proof. */
async function callMcp(gatewayUrl: string, authorization: string, proof?: string) {
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization };
  if (proof) headers.dpop = proof;
  const response = await fetch(`${gatewayUrl}/mcp`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'dpop-test', version: '1.0.0' } } }),
  });
  await response.text();
  return { status: response.status, challenge: response.headers.get('www-authenticate') ?? '' };
}

describe.skipIf(Boolean(temporalUnavailable))('DPoP (RFC 9449) for gateway tokens', () => {
  let gateway: TestGateway;

  beforeAll(async () => {
    gateway = await startTestGateway((config) => {
      config.upstreams = upstreams;
    });
  });

  afterAll(async () => {
    await gateway?.close();
  });

  it('advertises the proof algorithms in the metadata', async () => {
    const metadata = (await (await fetch(`${gateway.url}/.well-known/oauth-authorization-server`)).json()) as { dpop_signing_alg_values_supported?: string[] };
    expect(metadata.dpop_signing_alg_values_supported).toContain('ES256');
  });

  it('refuses a DPoP-bound token without a proof, as a bearer token, or with a wrong, foreign or replayed proof; accepts it with a fresh proof of its key', async () => {
    const key = await dpopKey();
    const { accessToken, tokenType, nonceAsked } = await token(gateway.url, key);
    expect(tokenType).toBe('DPoP');
    expect(nonceAsked).toBe(false);
    const mcp = `${gateway.url}/mcp`;

    const asBearer = await callMcp(gateway.url, `Bearer ${accessToken}`);
    expect(asBearer.status).toBe(401);
    expect(asBearer.challenge).toMatch(/^DPoP .*error="invalid_token"/);

    const noProof = await callMcp(gateway.url, `DPoP ${accessToken}`);
    expect(noProof.status).toBe(401);
    expect(noProof.challenge).toContain('error="invalid_dpop_proof"');

    const otherKey = await dpopKey();
    for (const proof of [
      await otherKey.proof('POST', mcp, { accessToken }),
      await key.proof('GET', mcp, { accessToken }),
      await key.proof('POST', `${gateway.url}/mcp/alpha`, { accessToken }),
      await key.proof('POST', mcp, { accessToken: 'another token' }),
      await key.proof('POST', mcp),
      await key.proof('POST', mcp, { accessToken, iat: Math.floor(Date.now() / 1000) - 3600 }),
      await key.proof('POST', mcp, { accessToken, typ: 'JWT' }),
    ]) {
      const refused = await callMcp(gateway.url, `DPoP ${accessToken}`, proof);
      expect(refused.status).toBe(401);
      expect(refused.challenge).toContain('error="invalid_dpop_proof"');
      // Every parameter a well-formed quoted-string, whatever the checker said.
      expect(refused.challenge).toMatch(/^DPoP (\w+="[^"\\]*"(, |$))+$/);
    }

    const proof = await key.proof('POST', mcp, { accessToken });
    expect((await callMcp(gateway.url, `DPoP ${accessToken}`, proof)).status).toBe(200);
    // The same proof again is a replay, even with the token's check cached.
    const replay = await callMcp(gateway.url, `DPoP ${accessToken}`, proof);
    expect(replay.status).toBe(401);
    expect(replay.challenge).toContain('error="invalid_dpop_proof"');
    expect((await callMcp(gateway.url, `DPoP ${accessToken}`, await key.proof('POST', mcp, { accessToken }))).status).toBe(200);
    // A proof-less bearer call stays refused after the token's check was cached.
    expect((await callMcp(gateway.url, `Bearer ${accessToken}`)).status).toBe(401);
  });

  it('accepts a bearer token as a bearer token (oauth.dpop.required is off), and refuses it under the DPoP scheme', async () => {
    const { accessToken, tokenType } = await token(gateway.url);
    expect(tokenType).toBe('Bearer');
    expect((await initializeMcp(gateway.url, accessToken)).status).toBe(200);
    const key = await dpopKey();
    const asDpop = await callMcp(gateway.url, `DPoP ${accessToken}`, await key.proof('POST', `${gateway.url}/mcp`, { accessToken }));
    expect(asDpop.status).toBe(401);
    expect(asDpop.challenge).toContain('error="invalid_token"');
  });

  it('with oauth.dpop.required and requireNonce, refuses a bearer token with a DPoP challenge, a proof without the nonce with use_dpop_nonce, and accepts a DPoP-bound one', async () => {
    const strict = await startTestGateway((config) => {
      config.upstreams = upstreams;
      config.oauth.dpop = { required: true, requireNonce: true };
    });
    try {
      const bearer = await token(strict.url);
      const refused = await callMcp(strict.url, `Bearer ${bearer.accessToken}`);
      expect(refused.status).toBe(401);
      expect(refused.challenge).toMatch(/^DPoP .*algs="ES256/);
      const key = await dpopKey();
      const bound = await token(strict.url, key);
      // The first proof, without a nonce, got use_dpop_nonce and the nonce to use (RFC 9449 §8).
      expect(bound.nonceAsked).toBe(true);
      expect((await callMcp(strict.url, `DPoP ${bound.accessToken}`, await key.proof('POST', `${strict.url}/mcp`, { accessToken: bound.accessToken }))).status).toBe(200);
    } finally {
      await strict.close();
    }
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeIdp } from '../helpers/fake-idp.js';
import type { FakeUpstream } from '../helpers/fake-upstream.js';
import type { TestGateway } from '../helpers/gateway.js';
import { callUpstreamTool, signInThroughIdp, startIdentityBroker, type IdentityBrokerSetup } from '../helpers/oidc-sign-in.js';
import { temporalUnavailable } from '../helpers/temporal.js';
import { upstreamGrantWorkflowId } from '../../workflows/upstream-grant/messages.js';

const skip = Boolean(temporalUnavailable);

describe.skipIf(skip)('auth type token-exchange: the IdP sign-in is exchanged for an upstream token (RFC 8693)', () => {
  let idp: FakeIdp;
  let upstream: FakeUpstream;
  let gateway: TestGateway;

  let setup: IdentityBrokerSetup;

  beforeAll(async () => {
    setup = await startIdentityBroker({
      autoLogin: 'emp-4711',
      trustedIdp: { idTokenAudience: 'consent-gateway', refusedSubjects: ['emp-0000'] },
      auth: (github) => ({
        type: 'token-exchange',
        tokenEndpoint: github.tokenEndpoint,
        issuer: github.issuer,
        resource: true,
        subjectToken: 'id_token',
        client: { clientId: github.clientId!, clientSecret: github.clientSecret!, authMethod: 'client_secret_post' },
      }),
    });
    ({ idp, upstream, gateway } = setup);
  });

  afterAll(async () => {
    await setup?.close();
  });

  it('calls the upstream as the signed-in user with no connect step; one exchange serves later calls', async () => {
    const token = await signInThroughIdp(gateway.url, idp, { upstreams: ['github'], resource: `${gateway.url}/mcp/github` });
    upstream.resetCounters();
    const first = await callUpstreamTool(gateway.url, 'github', token, 'whoami', 3);
    expect(first.status).toBe(200);
    expect(first.body.id).toBe(3);
    expect(JSON.stringify(first.body.result)).toContain('emp-4711');
    expect(upstream.toolCalls).toEqual([{ accountId: 'emp-4711', tool: 'whoami' }]);
    expect(upstream.counters.tokenExchanges).toBe(1);

    expect((await callUpstreamTool(gateway.url, 'github', token, 'whoami')).status).toBe(200);
    expect(upstream.counters.tokenExchanges).toBe(1);
    expect(upstream.counters.codeExchanges).toBe(0);
    expect(await gateway.store.getUpstreamTokens('emp-4711', 'github')).toBeUndefined();
  });

  it('keeps the IdP token sealed in the store and out of the logs; no workflow holds it', async () => {
    const record = await gateway.store.oauth.find('IdentityTokens', 'emp-4711', Math.floor(Date.now() / 1000));
    expect(record).toBeDefined();
    // An ID token is a JWT: base64url parts, the first two encoded JSON objects (`eyJ`).
    expect(record!.payload).toMatch(/^\{"sealed":"v2\./);
    expect(record!.payload).not.toMatch(/eyJ[A-Za-z0-9_-]+\.eyJ/);
    expect(gateway.logs.join('\n')).not.toMatch(/eyJ[A-Za-z0-9_-]+\.eyJ/);
    await expect(gateway.temporal.workflow.getHandle(upstreamGrantWorkflowId('emp-4711', 'github')).describe()).rejects.toThrow();
  });

  it('answers an exchange the upstream refuses with a JSON-RPC error carrying the request id', async () => {
    idp.answerWith({ login: 'emp-0000' });
    const token = await signInThroughIdp(gateway.url, idp, { upstreams: ['github'], resource: `${gateway.url}/mcp/github` });
    const refusals = upstream.counters.refusedIdentityGrants;
    const refused = await callUpstreamTool(gateway.url, 'github', token, 'whoami', 8);
    expect(refused.body.id).toBe(8);
    expect(refused.body.error).toEqual({ code: -32001, message: 'GitHub refused to issue a token (invalid_grant).' });
    expect(upstream.counters.refusedIdentityGrants).toBe(refusals + 1);
    expect(upstream.toolCalls.filter((call) => call.accountId === 'emp-0000')).toEqual([]);
  });

  it('asks the user to sign in again when no IdP token of theirs opens (one sealed for another user does not)', async () => {
    idp.answerWith({ login: 'emp-0815' });
    const token = await signInThroughIdp(gateway.url, idp, { upstreams: ['github'], resource: `${gateway.url}/mcp/github` });
    const other = (await gateway.store.oauth.find('IdentityTokens', 'emp-4711', Math.floor(Date.now() / 1000)))!;
    await gateway.store.oauth.upsert('IdentityTokens', 'emp-0815', { payload: other.payload, expiresAt: other.expiresAt, grantId: null, sessionUid: null, userCode: null });
    const exchanges = upstream.counters.tokenExchanges;
    const refused = await callUpstreamTool(gateway.url, 'github', token, 'whoami', 9);
    expect(refused.body.id).toBe(9);
    expect(refused.body.error?.code).toBe(-32001);
    expect(refused.body.error?.message).toMatch(/sign in again/);
    expect(upstream.counters.tokenExchanges).toBe(exchanges);
  });
});

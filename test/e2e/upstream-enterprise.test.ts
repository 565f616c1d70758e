import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FakeIdp } from '../helpers/fake-idp.js';
import type { FakeUpstream } from '../helpers/fake-upstream.js';
import type { TestGateway } from '../helpers/gateway.js';
import { callUpstreamTool, enterpriseAuthAt, signInThroughIdp, startIdentityBroker, type IdentityBrokerSetup } from '../helpers/oidc-sign-in.js';
import { temporalUnavailable } from '../helpers/temporal.js';

const skip = Boolean(temporalUnavailable);
const jwt = /eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/;

describe.skipIf(skip)('auth type enterprise: an ID-JAG from the IdP is traded at the upstream (Enterprise-Managed Authorization)', () => {
  let idp: FakeIdp;
  let upstream: FakeUpstream;
  let gateway: TestGateway;

  let setup: IdentityBrokerSetup;

  beforeAll(async () => {
    setup = await startIdentityBroker({
      autoLogin: 'emp-1001',
      idJag: true,
      trustedIdp: { refusedSubjects: ['emp-4004'] },
      auth: enterpriseAuthAt,
    });
    ({ idp, upstream, gateway } = setup);
  });

  afterAll(async () => {
    await setup?.close();
  });

  beforeEach(() => idp.refuseIdJags(undefined));

  async function signedIn(user: string): Promise<string> {
    idp.answerWith({ login: user });
    return signInThroughIdp(gateway.url, idp, { upstreams: ['github'], resource: `${gateway.url}/mcp/github` });
  }

  it('calls the upstream as the IdP user with no connect step: ID-JAG for the upstream, then the JWT bearer grant', async () => {
    const token = await signedIn('emp-1001');
    upstream.resetCounters();
    const first = await callUpstreamTool(gateway.url, 'github', token, 'whoami', 4);
    expect(first.status).toBe(200);
    expect(first.body.id).toBe(4);
    expect(JSON.stringify(first.body.result)).toContain('emp-1001');
    expect(upstream.toolCalls).toEqual([{ accountId: 'emp-1001', tool: 'whoami' }]);
    expect(idp.counters.idJags).toBe(1);
    expect(idp.lastIdJag).toMatchObject({ sub: 'emp-1001', aud: upstream.issuer, client_id: upstream.clientId, resource: upstream.mcpUrl, scope: 'repo' });
    expect(upstream.counters.jwtBearerGrants).toBe(1);
    expect(upstream.counters.codeExchanges).toBe(0);

    expect((await callUpstreamTool(gateway.url, 'github', token, 'whoami')).status).toBe(200);
    expect(idp.counters.idJags).toBe(1);
    expect(upstream.counters.jwtBearerGrants).toBe(1);
    expect(gateway.logs.join('\n')).not.toMatch(jwt);
  });

  it("answers the IdP's policy refusal with a JSON-RPC error carrying the request id, and the upstream is not asked", async () => {
    const token = await signedIn('emp-2002');
    idp.refuseIdJags({ subjects: ['emp-2002'], error: 'access_denied' });
    const grants = upstream.counters.jwtBearerGrants;
    const refused = await callUpstreamTool(gateway.url, 'github', token, 'whoami', 5);
    expect(refused.body.id).toBe(5);
    expect(refused.body.error).toEqual({ code: -32001, message: 'Your identity provider does not let you use GitHub (access_denied).' });
    expect(upstream.counters.jwtBearerGrants).toBe(grants);
    expect(idp.counters.refusedIdJags).toBeGreaterThan(0);
  });

  it('asks the user to sign in again when the IdP no longer takes their ID token', async () => {
    const token = await signedIn('emp-3003');
    idp.refuseIdJags({ subjects: ['emp-3003'], error: 'invalid_grant' });
    const refused = await callUpstreamTool(gateway.url, 'github', token, 'whoami', 6);
    expect(refused.body.id).toBe(6);
    expect(refused.body.error?.code).toBe(-32001);
    expect(refused.body.error?.message).toBe('The identity provider no longer accepts your sign-in for GitHub: sign in again (authorize this application once more).');
  });

  it('answers an ID-JAG the upstream refuses with a JSON-RPC error', async () => {
    const token = await signedIn('emp-4004');
    const idJags = idp.counters.idJags;
    const refusals = upstream.counters.refusedIdentityGrants;
    const refused = await callUpstreamTool(gateway.url, 'github', token, 'whoami', 7);
    expect(refused.body.id).toBe(7);
    expect(refused.body.error).toEqual({ code: -32001, message: 'GitHub refused to issue a token (invalid_grant).' });
    expect(idp.counters.idJags).toBe(idJags + 1);
    expect(upstream.counters.refusedIdentityGrants).toBe(refusals + 1);
  });
});

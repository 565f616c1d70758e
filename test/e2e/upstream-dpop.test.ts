import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dpopProof, newDpopKey } from '../../server/upstream-brokered/dpop.js';
import { requestToken } from '../../server/upstream-brokered/token-request.js';
import { callUpstreamTool, enterpriseAuthAt, signInThroughIdp, startIdentityBroker, type IdentityBrokerSetup } from '../helpers/oidc-sign-in.js';
import { temporalUnavailable } from '../helpers/temporal.js';

const skip = Boolean(temporalUnavailable);

describe.skipIf(skip)('DPoP toward an upstream whose authorization server advertises it (RFC 9449)', () => {
  let setup: IdentityBrokerSetup;

  beforeAll(async () => {
    setup = await startIdentityBroker({
      autoLogin: 'emp-5005',
      idJag: true,
      requireDpop: true,
      auth: enterpriseAuthAt,
    });
  });

  afterAll(async () => {
    await setup?.close();
  });

  /** A `tools/call` of `whoami` straight at the upstream's MCP URL with these headers. */
  function callUpstreamDirectly(headers: Record<string, string>): Promise<Response> {
    return fetch(setup.upstream.mcpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25', ...headers },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {} } }),
    });
  }

  it('gets a DPoP-bound token with a proof of a key of its own and proves it on every call', async () => {
    const { gateway, idp, upstream } = setup;
    const metadata = (await (await fetch(`${upstream.issuer}/.well-known/oauth-authorization-server`)).json()) as { dpop_signing_alg_values_supported?: string[] };
    expect(metadata.dpop_signing_alg_values_supported).toContain('ES256');

    const token = await signInThroughIdp(gateway.url, idp, { upstreams: ['github'], resource: `${gateway.url}/mcp/github` });
    upstream.resetCounters();
    const first = await callUpstreamTool(gateway.url, 'github', token, 'whoami', 11);
    expect(first.status).toBe(200);
    expect(JSON.stringify(first.body.result)).toContain('emp-5005');
    // The upstream takes the grant only with a valid proof and the bound token only with a proof of its key.
    expect(upstream.counters.jwtBearerGrants).toBe(1);
    expect(upstream.counters.refusedIdentityGrants).toBe(0);
    expect(upstream.counters.rejectedMcpRequests).toBe(0);

    const second = await callUpstreamTool(gateway.url, 'github', token, 'whoami', 12);
    expect(second.status).toBe(200);
    expect(upstream.counters.jwtBearerGrants).toBe(1);
    expect(upstream.toolCalls).toEqual([
      { accountId: 'emp-5005', tool: 'whoami' },
      { accountId: 'emp-5005', tool: 'whoami' },
    ]);
  });

  it('the upstream refuses a grant without a proof, and a bound token as a bearer token or with another key', async () => {
    const { idp, upstream } = setup;
    const assertion = idp.lastIdJag!.jwt;
    const client = { clientId: upstream.clientId!, clientSecret: upstream.clientSecret!, authMethod: 'client_secret_post' as const };
    const grant = { displayName: 'GitHub', issuer: upstream.issuer, tokenEndpoint: upstream.tokenEndpoint, client, grantType: 'urn:ietf:params:oauth:grant-type:jwt-bearer', parameters: new URLSearchParams({ assertion }) };

    await expect(requestToken(grant)).rejects.toThrow('GitHub refused to issue a token (invalid_dpop_proof).');

    const key = await newDpopKey('ES256');
    const bound = await requestToken({ ...grant, dpop: key.handle });
    expect(bound.tokenType).toBe('dpop');

    const asBearer = await callUpstreamDirectly({ authorization: `Bearer ${bound.accessToken}` });
    expect(asBearer.status).toBe(401);
    const noProof = await callUpstreamDirectly({ authorization: `DPoP ${bound.accessToken}` });
    expect(noProof.status).toBe(401);
    const otherKey = await callUpstreamDirectly({ authorization: `DPoP ${bound.accessToken}`, dpop: await dpopProof(await newDpopKey('ES256'), 'POST', upstream.mcpUrl, bound.accessToken) });
    expect(otherKey.status).toBe(401);
    const wrongMethod = await callUpstreamDirectly({ authorization: `DPoP ${bound.accessToken}`, dpop: await dpopProof(key, 'GET', upstream.mcpUrl, bound.accessToken) });
    expect(wrongMethod.status).toBe(401);

    const proven = await callUpstreamDirectly({ authorization: `DPoP ${bound.accessToken}`, dpop: await dpopProof(key, 'POST', upstream.mcpUrl, bound.accessToken) });
    expect(proven.status).toBe(200);
    expect(await proven.text()).toContain('emp-5005');
  });

  it('serves the upstream through the aggregate /mcp endpoint too: its tools listed and called with proofs, no connect link', async () => {
    const { gateway, idp, upstream } = setup;
    idp.answerWith({ login: 'emp-6006' });
    const token = await signInThroughIdp(gateway.url, idp, { upstreams: ['github'] });
    const client = new Client({ name: 'aggregate test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    try {
      const tools = await client.listTools();
      expect(tools.tools.map((tool) => tool.name)).toContain('github__whoami');
      const called = await client.callTool({ name: 'github__whoami', arguments: {} });
      expect(called.isError).toBeFalsy();
      expect(JSON.stringify(called.content)).toContain('emp-6006');
    } finally {
      await client.close();
    }
    expect(upstream.toolCalls.at(-1)).toEqual({ accountId: 'emp-6006', tool: 'whoami' });
  });
});

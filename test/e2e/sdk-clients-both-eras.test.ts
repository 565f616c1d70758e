import { Client as LegacyClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as LegacyTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConformanceUpstream, type ConformanceUpstream } from '../helpers/conformance-upstream.js';
import { ConsentDriver } from '../helpers/consent-driver.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { TestOAuthProvider } from '../helpers/mcp-client.js';
import { temporalUnavailable } from '../helpers/temporal.js';

/** What the test does with either SDK's client, whatever its era. */
interface AnyClient {
  listTools(): Promise<{ tools: { name: string }[] }>;
  callTool(params: { name: string; arguments: Record<string, unknown> }): Promise<unknown>;
  listResources(): Promise<{ resources: { uri: string; name: string }[] }>;
  readResource(params: { uri: string }): Promise<{ contents: { uri: string }[] }>;
  getPrompt(params: { name: string }): Promise<{ messages: unknown[] }>;
  close(): Promise<void>;
}

type Era = 'legacy (SDK 1.x, 2025-11-25)' | 'modern (SDK v2, 2026-07-28)';

/**
 * An MCP client of `era` connected to `url`, authorized as an MCP host would: the SDK discovers
 * the gateway's OAuth server from the 401, registers, and sends the user to the consent flow,
 * which the driver completes through the same JSON API the consent screens use.
 */
async function authorizedClient(era: Era, url: string, gatewayUrl: string, user: string): Promise<AnyClient> {
  const provider = new TestOAuthProvider({ redirectUrl: 'http://127.0.0.1:9/callback', clientName: `${era} client` });
  const attempt = async (): Promise<{ client: AnyClient } | { finish(code: string, iss: string | undefined): Promise<void> }> => {
    if (era.startsWith('legacy')) {
      const transport = new LegacyTransport(new URL(url), { authProvider: provider });
      const client = new LegacyClient({ name: 'legacy-e2e', version: '1.0.0' });
      try {
        await client.connect(transport);
        return { client: client as unknown as AnyClient };
      } catch (error) {
        if (!provider.authorizationUrl) throw error;
        return { finish: (code) => transport.finishAuth(code) };
      }
    }
    const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider as never });
    const client = new Client({ name: 'modern-e2e', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
    try {
      await client.connect(transport);
      return { client: client as unknown as AnyClient };
    } catch (error) {
      if (!provider.authorizationUrl) throw error;
      // The v2 client checks the authorization response's issuer (RFC 9207).
      return { finish: (code, iss) => transport.finishAuth(code, iss) };
    }
  };
  const first = await attempt();
  if ('client' in first) throw new Error('expected the gateway to ask for authorization first');
  expect(provider.authorizationUrl!.searchParams.get('resource')).toBe(url);
  const back = await new ConsentDriver(gatewayUrl).consent(provider.authorizationUrl!, { user });
  const code = back.searchParams.get('code');
  if (!code) throw new Error(`the consent flow ended without a code: ${back.href}`);
  await first.finish(code, back.searchParams.get('iss') ?? undefined);
  const second = await attempt();
  if (!('client' in second)) throw new Error('the client was asked to authorize again');
  return second.client;
}

describe.skipIf(Boolean(temporalUnavailable))('SDK clients of both eras through both endpoints', () => {
  let gateway: TestGateway;
  let alpha: ConformanceUpstream;
  let beta: ConformanceUpstream;

  beforeAll(async () => {
    [alpha, beta] = await Promise.all([startConformanceUpstream({ name: 'alpha-server' }), startConformanceUpstream({ name: 'beta-server' })]);
    gateway = await startTestGateway((config) => {
      config.upstreams = [
        { name: 'alpha', displayName: 'Alpha', mcpUrl: alpha.url, auth: { type: 'none' }, scopes: [] },
        { name: 'beta', displayName: 'Beta', mcpUrl: beta.url, auth: { type: 'none' }, scopes: [] },
      ];
    });
  });

  afterAll(async () => {
    await gateway?.close();
    await Promise.all([alpha?.close(), beta?.close()]);
  });

  const eras: Era[] = ['legacy (SDK 1.x, 2025-11-25)', 'modern (SDK v2, 2026-07-28)'];
  eras.forEach((era, index) => {
    it(`${era}: consents, then calls tools, reads resources and gets prompts at /mcp/alpha under their own names`, async () => {
      const client = await authorizedClient(era, `${gateway.url}/mcp/alpha`, gateway.url, `sdk-eras-single-${index}`);
      try {
        const tools = await client.listTools();
        expect(tools.tools.map((tool) => tool.name)).toContain('test_simple_text');
        expect(tools.tools.some((tool) => tool.name.startsWith('alpha__'))).toBe(false);
        expect(JSON.stringify(await client.callTool({ name: 'test_simple_text', arguments: {} }))).toContain('"type":"text"');
        const resources = await client.listResources();
        expect(resources.resources.map((resource) => resource.uri)).toContain('test://static-text');
        expect((await client.readResource({ uri: 'test://static-text' })).contents[0]?.uri).toBe('test://static-text');
        expect((await client.getPrompt({ name: 'test_simple_prompt' })).messages.length).toBeGreaterThan(0);
      } finally {
        await client.close();
      }
    });

    it(`${era}: consents, then uses both upstreams through /mcp with prefixed names and URIs that lead back`, async () => {
      const client = await authorizedClient(era, `${gateway.url}/mcp`, gateway.url, `sdk-eras-aggregate-${index}`);
      try {
        const names = (await client.listTools()).tools.map((tool) => tool.name);
        expect(names).toEqual(expect.arrayContaining(['alpha__test_simple_text', 'beta__test_simple_text']));
        expect(JSON.stringify(await client.callTool({ name: 'beta__test_simple_text', arguments: {} }))).toContain('"type":"text"');
        const resources = (await client.listResources()).resources;
        const fromBeta = resources.filter((resource) => resource.uri.includes('beta') && resource.uri.includes('static-text'));
        expect(fromBeta).toHaveLength(1);
        const read = await client.readResource({ uri: fromBeta[0]!.uri });
        expect(read.contents[0]?.uri).toBe(fromBeta[0]!.uri);
        expect((await client.getPrompt({ name: 'alpha__test_simple_prompt' })).messages.length).toBeGreaterThan(0);
      } finally {
        await client.close();
      }
    });
  });
});

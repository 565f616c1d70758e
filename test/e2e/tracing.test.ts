import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCipher } from '../../server/crypto/keys.js';
import { startTracing, type Tracing } from '../../server/tracing.js';
import { upstreamRedirectUri } from '../../server/upstream-config.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { obtainGatewayToken, type GatewayTokens } from '../helpers/gateway-token.js';
import { temporalUnavailable } from '../helpers/temporal.js';
import { connectNotionAccount, notionUpstreamConfig } from '../helpers/upstream-account.js';

/** The chain of spans from `span` up to its trace's root, `span` first. */
function ancestry(spans: ReadableSpan[], span: ReadableSpan): ReadableSpan[] {
  const byId = new Map(spans.map((candidate) => [candidate.spanContext().spanId, candidate]));
  const chain = [span];
  for (let parent = byId.get(span.parentSpanId ?? ''); parent; parent = byId.get(parent.parentSpanId ?? '')) chain.push(parent);
  return chain;
}

const named = (spans: ReadableSpan[], name: string) => spans.filter((span) => span.name === name);

describe.skipIf(Boolean(temporalUnavailable))('traces', () => {
  const exporter = new InMemorySpanExporter();
  let tracing: Tracing | undefined;
  let notion: FakeUpstream;
  let gateway: TestGateway;
  let tokens: GatewayTokens;
  let passthroughTokens: GatewayTokens;

  beforeAll(async () => {
    // Installed before the gateway and its worker, which take the tracer and the workflow sink at start.
    tracing = await startTracing({ serviceName: 'consent-gateway-test' }, { spanProcessor: new SimpleSpanProcessor(exporter) });
    notion = await startFakeUpstream({ preset: 'notion' });
    gateway = await startTestGateway((config) => {
      config.upstreams = [notionUpstreamConfig(notion)];
    });
    const upstream = gateway.config.upstreams[0]!;
    await connectNotionAccount({ store: gateway.store, cipher: await loadCipher(gateway.config, { debug() {}, info() {}, warn() {}, error() {} }), notion, upstream, redirectUri: upstreamRedirectUri(gateway.config), userId: 'trace-ulla', login: 'notion-ulla' });
    tokens = await obtainGatewayToken(gateway.url, { user: 'trace-ulla', upstreams: ['notion'] });
    passthroughTokens = await obtainGatewayToken(gateway.url, { user: 'trace-ulla', resource: `${gateway.url}/mcp/notion` });
  });

  afterAll(async () => {
    await gateway?.close();
    await notion?.close();
    await tracing?.shutdown();
  });

  async function callWhoami(url: string, accessToken: string, tool: string): Promise<unknown> {
    const client = new Client({ name: 'trace-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${accessToken}` } } }));
    try {
      return await client.callTool({ name: tool, arguments: {} });
    } finally {
      await client.close();
    }
  }

  it('spans /mcp from the request through the bearer check and the token lookup to the upstream call', async () => {
    expect(await callWhoami(`${gateway.url}/mcp`, tokens.accessToken, 'notion__whoami')).toMatchObject({ content: [{ type: 'text', text: 'notion-ulla' }] });
    const spans = exporter.getFinishedSpans();
    // The first call also connects to the upstream (initialize, an era probe): the call answered 200 is among them.
    const upstreamCall = named(spans, 'POST upstream notion').find(
      (span) => span.attributes['http.response.status_code'] === 200 && ancestry(spans, span).at(-1)!.attributes['mcp.method.name'] === 'tools/call',
    );
    expect(upstreamCall).toBeDefined();
    expect(upstreamCall!.kind).toBe(SpanKind.CLIENT);
    expect(upstreamCall!.attributes).toMatchObject({ 'gateway.upstream': 'notion', 'http.response.status_code': 200, 'server.address': '127.0.0.1' });
    const chain = ancestry(spans, upstreamCall!);
    const root = chain.at(-1)!;
    expect(root).toMatchObject({ name: 'POST /mcp', kind: SpanKind.SERVER });
    expect(root.attributes).toMatchObject({ 'http.route': '/mcp', 'http.response.status_code': 200, 'mcp.method.name': 'tools/call' });
    const inTrace = spans.filter((span) => span.spanContext().traceId === root.spanContext().traceId);
    const check = named(inTrace, 'gateway.bearer_check');
    expect(check).toHaveLength(1);
    expect(check[0]!.parentSpanId).toBe(root.spanContext().spanId);
    expect(check[0]!.attributes).toMatchObject({ 'enduser.id': 'trace-ulla', 'gateway.client_id': tokens.clientId });
    expect(named(inTrace, 'gateway.upstream_token').length).toBeGreaterThan(0);
  });

  it('spans /mcp/<upstream> through the token lookup to the upstream call', async () => {
    expect(await callWhoami(`${gateway.url}/mcp/notion`, passthroughTokens.accessToken, 'whoami')).toMatchObject({ content: [{ type: 'text', text: 'notion-ulla' }] });
    const spans = exporter.getFinishedSpans();
    const calls = named(spans, 'POST upstream notion').filter((span) => ancestry(spans, span).at(-1)!.name === 'POST /mcp/{upstream}');
    expect(calls.length).toBeGreaterThan(0);
    for (const call of calls) {
      const root = ancestry(spans, call).at(-1)!;
      const inTrace = spans.filter((span) => span.spanContext().traceId === root.spanContext().traceId);
      expect(root.attributes).toMatchObject({ 'http.route': '/mcp/{upstream}' });
      expect(named(inTrace, 'gateway.bearer_check')).toHaveLength(1);
      expect(named(inTrace, 'gateway.upstream_token').length).toBeGreaterThan(0);
    }
  });

  it('spans a consent route into its workflow and the workflow into its activities', async () => {
    await obtainGatewayToken(gateway.url, { user: 'trace-vera', upstreams: ['notion'] });
    // An activity run below a consentFlow run: workflow spans reach the exporter through the
    // worker's sink after each workflow task, so they are waited for.
    const find = () => {
      const spans = exporter.getFinishedSpans();
      for (const activity of spans.filter((span) => span.name.startsWith('RunActivity:'))) {
        const chain = ancestry(spans, activity);
        const run = chain.findIndex((span) => span.name === 'RunWorkflow:consentFlow');
        if (run >= 0) return chain.slice(run);
      }
      return undefined;
    };
    await expect.poll(find, { timeout: 30_000 }).toBeDefined();
    const [run, start, route] = find()!;
    expect(run!.name).toBe('RunWorkflow:consentFlow');
    expect(start!.name).toBe('StartWorkflow:consentFlow');
    expect(route).toMatchObject({ kind: SpanKind.SERVER });
    expect(route!.name).toMatch(/^GET \//);
    expect(route!.attributes['http.route']).toBeTypeOf('string');
  });

  it('puts no token or code in any span', () => {
    const spans = exporter.getFinishedSpans();
    expect(spans.length).toBeGreaterThan(0);
    const recorded = JSON.stringify(spans.map((span) => ({ name: span.name, attributes: span.attributes, events: span.events, status: span.status })));
    for (const secret of [tokens.accessToken, passthroughTokens.accessToken, tokens.refreshToken ?? tokens.accessToken]) expect(recorded).not.toContain(secret);
    expect(recorded).not.toMatch(/[?&](code|state)=/);
  });
});

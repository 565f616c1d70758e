import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inSpan, startTracing } from '../../server/tracing.js';

interface Received {
  method: string | undefined;
  url: string | undefined;
  headers: IncomingHttpHeaders;
  body: string;
}

type OtlpJson = {
  resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: { name: string; attributes: { key: string }[] }[] }[] }[];
};

// Installing tracing is once per process: the "off" test must run before the one that installs it.
describe('trace export by OTLP over HTTP', () => {
  const received: Received[] = [];
  let collector: Server;
  let endpoint: string;

  beforeAll(async () => {
    collector = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        received.push({ method: req.method, url: req.url, headers: req.headers, body });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}/otel`;
  });

  afterAll(() => {
    collector?.close();
  });

  it('installs nothing without an endpoint: spans do not record', async () => {
    await expect(startTracing({ serviceName: 'off' })).resolves.toBeUndefined();
    const recording = await inSpan('never.recorded', {}, async (span) => span.isRecording());
    expect(recording).toBe(false);
  });

  it('sends finished spans to <endpoint>/v1/traces with the service name, on shutdown at the latest', async () => {
    const tracing = await startTracing({ otlpEndpoint: endpoint, serviceName: 'export-test' });
    expect(tracing).toBeDefined();
    await inSpan('export.check', { 'gateway.upstream': 'notion' }, async () => undefined);
    await tracing!.shutdown();
    expect(received.map(({ method, url }) => ({ method, url }))).toEqual([{ method: 'POST', url: '/otel/v1/traces' }]);
    expect(received[0]!.headers['content-type']).toBe('application/json');
    const sent = JSON.parse(received[0]!.body) as OtlpJson;
    const [resourceSpans] = sent.resourceSpans;
    expect(resourceSpans!.resource.attributes).toContainEqual({ key: 'service.name', value: { stringValue: 'export-test' } });
    const spans = resourceSpans!.scopeSpans.flatMap((scope) => scope.spans);
    expect(spans.map((span) => span.name)).toEqual(['export.check']);
    expect(spans[0]!.attributes.map((attribute) => attribute.key)).toEqual(['gateway.upstream']);
  });
});

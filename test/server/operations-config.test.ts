import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../server/config.js';

const token = 'a'.repeat(32);

describe('the operations config', () => {
  it('is off by default: no admin token, no audit lines, metrics on the app, no traces', () => {
    expect(loadConfig({ env: {} }).operations).toEqual({ auditStdout: false, tracing: { serviceName: 'consent-gateway' } });
  });

  it('reads every setting from the environment', () => {
    const config = loadConfig({
      env: {
        GATEWAY_ADMIN_TOKEN: token,
        GATEWAY_AUDIT_STDOUT: 'true',
        GATEWAY_METRICS_PORT: '9100',
        GATEWAY_TEMPORAL_METRICS_ADDRESS: '127.0.0.1:9101',
        GATEWAY_TEMPORAL_UI_URL: 'https://temporal.example/',
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector.example:4318/',
        OTEL_SERVICE_NAME: 'gateway-eu',
      },
    });
    expect(config.operations).toEqual({
      adminToken: token,
      auditStdout: true,
      metricsPort: 9100,
      temporalMetricsAddress: '127.0.0.1:9101',
      temporalUiUrl: 'https://temporal.example',
      tracing: { otlpEndpoint: 'http://collector.example:4318', serviceName: 'gateway-eu' },
    });
  });

  it('reads tracing from the file, the environment winning', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cg-tracing-'));
    const file = path.join(dir, 'gateway.yml');
    await writeFile(file, 'tracing:\n  otlpEndpoint: https://otel.example/base\n  serviceName: from-file\n');
    try {
      expect(loadConfig({ env: {}, file }).operations.tracing).toEqual({ otlpEndpoint: 'https://otel.example/base', serviceName: 'from-file' });
      expect(loadConfig({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }, file }).operations.tracing).toEqual({ otlpEndpoint: 'http://127.0.0.1:4318', serviceName: 'from-file' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses an OTLP endpoint that is not an http(s) URL', () => {
    expect(() => loadConfig({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' } })).toThrow(ConfigError);
  });

  it('refuses an admin token shorter than 32 characters', () => {
    expect(() => loadConfig({ env: { GATEWAY_ADMIN_TOKEN: 'short' } })).toThrow(ConfigError);
    expect(() => loadConfig({ env: { GATEWAY_ADMIN_TOKEN: 'short' } })).toThrow('admin.token (GATEWAY_ADMIN_TOKEN) must be at least 32 characters');
  });

  it('refuses a Temporal metrics address that is not host:port', () => {
    expect(() => loadConfig({ env: { GATEWAY_TEMPORAL_METRICS_ADDRESS: 'http://x:9' } })).toThrow('metrics.temporalAddress must be host:port');
  });
});

import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../server/config.js';

const token = 'a'.repeat(32);

describe('the operations config', () => {
  it('is off by default: no admin token, no audit lines, metrics on the app', () => {
    expect(loadConfig({ env: {} }).operations).toEqual({ auditStdout: false });
  });

  it('reads every setting from the environment', () => {
    const config = loadConfig({
      env: {
        GATEWAY_ADMIN_TOKEN: token,
        GATEWAY_AUDIT_STDOUT: 'true',
        GATEWAY_METRICS_PORT: '9100',
        GATEWAY_TEMPORAL_METRICS_ADDRESS: '127.0.0.1:9101',
        GATEWAY_TEMPORAL_UI_URL: 'https://temporal.example/',
      },
    });
    expect(config.operations).toEqual({
      adminToken: token,
      auditStdout: true,
      metricsPort: 9100,
      temporalMetricsAddress: '127.0.0.1:9101',
      temporalUiUrl: 'https://temporal.example',
    });
  });

  it('refuses an admin token shorter than 32 characters', () => {
    expect(() => loadConfig({ env: { GATEWAY_ADMIN_TOKEN: 'short' } })).toThrow(ConfigError);
    expect(() => loadConfig({ env: { GATEWAY_ADMIN_TOKEN: 'short' } })).toThrow('admin.token (GATEWAY_ADMIN_TOKEN) must be at least 32 characters');
  });

  it('refuses a Temporal metrics address that is not host:port', () => {
    expect(() => loadConfig({ env: { GATEWAY_TEMPORAL_METRICS_ADDRESS: 'http://x:9' } })).toThrow('metrics.temporalAddress must be host:port');
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import type { Server } from 'node:http';
import { countTokenCheck } from '../../server/metrics.js';
import { startMetricsServer } from '../../server/routes/metrics.js';
import { freePort } from '../helpers/free-port.js';

describe('the metrics port', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  });

  it('serves /metrics without a token, and nothing else', async () => {
    const port = await freePort();
    server = await startMetricsServer('127.0.0.1', port);
    countTokenCheck('metrics_port_test');
    const metrics = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await metrics.text()).toContain('gateway_token_checks_total{outcome="metrics_port_test"} 1');
    const other = await fetch(`http://127.0.0.1:${port}/admin/audit`);
    expect(other.status).toBe(404);
  });
});

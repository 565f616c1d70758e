import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main as adminCommand } from '../../scripts/admin.js';
import type { AuditEntry } from '../../server/store/store.js';
import { authorizationUrl, ConsentDriver, createPkce, initializeMcp, postForm, registerClient } from '../helpers/consent-driver.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { temporalUnavailable } from '../helpers/temporal.js';

const adminToken = randomBytes(32).toString('base64url');
const redirectUri = 'http://127.0.0.1:9/callback';

/** One Prometheus sample's value, or 0 when the series is absent. */
function sample(text: string, name: string, labels: Record<string, string>): number {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const braces = /^[^{ ]+(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!braces) continue;
    const present = (braces[1] ?? '').split(',');
    if (wanted.every((pair) => present.includes(pair))) return Number(braces[2]);
  }
  return 0;
}

/** Every line of the exposition is a comment, blank, or `name{labels} value` (Prometheus text format 0.0.4). */
function parsesAsPrometheusText(text: string): boolean {
  return text.split('\n').every((line) => line === '' || /^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$/.test(line) || /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? -?[0-9.e+Inf-]+$|NaN$/.test(line));
}

describe.skipIf(temporalUnavailable)('the operator: audit trail, metrics and the admin command', () => {
  let github: FakeUpstream;
  let gateway: TestGateway;
  const secrets: string[] = [];

  beforeAll(async () => {
    github = await startFakeUpstream({ preset: 'github', autoLogin: 'octo-ops' });
    secrets.push(github.clientSecret!);
    gateway = await startTestGateway((config) => {
      config.operations.adminToken = adminToken;
      config.upstreams = [
        {
          name: 'github',
          displayName: 'GitHub',
          mcpUrl: github.mcpUrl,
          auth: {
            type: 'oauth',
            issuer: github.issuer,
            client: { kind: 'static', clientId: github.clientId!, clientSecret: github.clientSecret!, authMethod: 'client_secret_post' },
            resource: true,
          },
          scopes: [...github.scopes],
        },
      ];
    });
  }, 60_000);

  afterAll(async () => {
    await gateway?.close();
    await github?.close();
  });

  const admin = (path: string, init: RequestInit = {}, token: string | null = adminToken) =>
    fetch(`${gateway.url}${path}`, { ...init, headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }) } });

  async function auditOf(query: string): Promise<AuditEntry[]> {
    const response = await admin(`/admin/audit?${query}`);
    expect(response.status).toBe(200);
    return ((await response.json()) as { entries: AuditEntry[] }).entries;
  }

  /** A consent flow through the JSON API as `user`, connecting GitHub on the way; returns the tokens. */
  async function consentWithConnect(user: string, clientId: string, decision: 'approve' | 'deny' = 'approve', resource = `${gateway.url}/mcp`) {
    const pkce = createPkce();
    const driver = new ConsentDriver(gateway.url);
    const { uid, csrfToken } = await driver.start(authorizationUrl(gateway.url, { clientId, redirectUri, pkce, resource }));
    expect((await driver.post(uid, 'identity', { userId: user })).status).toBe(200);
    const connect = await driver.request(`/interaction/${uid}/connect`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrfToken },
      body: JSON.stringify({ upstream: 'github' }),
    });
    expect(connect.status, connect.body).toBe(200);
    const callback = await github.completeAuthorization((JSON.parse(connect.body) as { redirectTo: string }).redirectTo);
    secrets.push(callback.searchParams.get('code') ?? '');
    expect((await driver.request(callback.href)).status).toBe(302);
    const services = await driver.post(uid, 'services', { upstreams: ['github'] });
    expect(services.status).toBe(200);
    let redirectTo = services.body.redirectTo;
    // A remembered consent ends the flow at the services step.
    if (!redirectTo) {
      const decided = await driver.post(uid, 'decision', { decision });
      expect(decided.status, JSON.stringify(decided.body)).toBe(200);
      redirectTo = decided.body.redirectTo;
    }
    const back = await driver.followToClient(redirectTo!);
    const code = back.searchParams.get('code');
    if (!code) return { uid, accessToken: undefined };
    const token = await postForm(gateway.url, '/token', { grant_type: 'authorization_code', code, code_verifier: pkce.verifier, redirect_uri: redirectUri, client_id: clientId, resource });
    expect(token.status).toBe(200);
    secrets.push(code, token.body.access_token!, token.body.refresh_token ?? '', pkce.verifier);
    return { uid, accessToken: token.body.access_token! };
  }

  it('refuses /admin/* and /metrics without the admin token, and with a wrong one', async () => {
    for (const path of ['/admin/audit', '/admin/users', '/metrics']) {
      const missing = await admin(path, {}, null);
      expect(missing.status).toBe(401);
      expect(await missing.json()).toEqual({ error: 'invalid_token', error_description: 'the admin API needs the admin bearer token' });
      const wrong = await admin(path, {}, `${adminToken.slice(0, -1)}x`);
      expect(wrong.status).toBe(401);
    }
    const revoke = await admin('/admin/users/nobody/revoke', { method: 'POST' }, 'not-the-token');
    expect(revoke.status).toBe(401);
  });

  it('writes exactly one entry with the right fields for a registration, a connect, an approval and a remembered consent', async () => {
    const clientId = await registerClient(gateway.url, [redirectUri], 'Audited client');
    const { uid } = await consentWithConnect('audit-ana', clientId);
    const registered = await auditOf(`kind=client.registered&client=${encodeURIComponent(clientId)}`);
    expect(registered).toHaveLength(1);
    expect(registered[0]).toMatchObject({ kind: 'client.registered', clientId, userId: null, outcome: 'ok' });
    expect(registered[0]!.sourceIp).toMatch(/127\.0\.0\.1$/);

    const connected = await auditOf('user=audit-ana&kind=upstream.connected');
    expect(connected).toHaveLength(1);
    expect(connected[0]).toMatchObject({ userId: 'audit-ana', clientId, upstream: 'github', flowId: `consent:${uid}`, outcome: 'ok', actor: null });

    const approved = await auditOf('user=audit-ana&kind=consent.approved');
    expect(approved).toHaveLength(1);
    expect(approved[0]).toMatchObject({ userId: 'audit-ana', clientId, upstream: null, flowId: `consent:${uid}`, outcome: 'ok' });
    expect(approved[0]!.sourceIp).toMatch(/127\.0\.0\.1$/);

    // The same client asking again skips the approve screen: a remembered consent, and a reconnect.
    const again = await consentWithConnect('audit-ana', clientId);
    const remembered = await auditOf('user=audit-ana&kind=consent.remembered');
    expect(remembered).toHaveLength(1);
    expect(remembered[0]).toMatchObject({ clientId, flowId: `consent:${again.uid}`, outcome: 'ok' });
    expect(await auditOf('user=audit-ana&kind=upstream.reconnected')).toHaveLength(1);
    expect(await auditOf('user=audit-ana&kind=consent.approved')).toHaveLength(1);
  }, 60_000);

  it('writes one denial entry', async () => {
    const clientId = await registerClient(gateway.url, [redirectUri], 'Denied client');
    const { uid } = await consentWithConnect('audit-dora', clientId, 'deny');
    const denied = await auditOf(`client=${encodeURIComponent(clientId)}&kind=consent.denied`);
    expect(denied).toHaveLength(1);
    expect(denied[0]).toMatchObject({ userId: 'audit-dora', flowId: `consent:${uid}`, outcome: 'denied' });
    expect(await auditOf(`client=${encodeURIComponent(clientId)}&kind=consent.approved`)).toEqual([]);
  }, 60_000);

  it('exposes Prometheus text whose counters move with real traffic', async () => {
    const before = await (await admin('/metrics')).text();
    expect(parsesAsPrometheusText(before)).toBe(true);
    const clientId = await registerClient(gateway.url, [redirectUri], 'Metered client');
    const { accessToken } = await consentWithConnect('metric-mo', clientId);
    expect((await initializeMcp(gateway.url, accessToken)).status).toBe(200);
    expect((await initializeMcp(gateway.url, 'not-a-token')).status).toBe(401);
    const response = await admin('/metrics');
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const after = await response.text();
    expect(parsesAsPrometheusText(after)).toBe(true);
    const moved = (name: string, labels: Record<string, string>) => sample(after, name, labels) - sample(before, name, labels);
    expect(moved('gateway_consent_flows_total', { event: 'started' })).toBe(1);
    expect(moved('gateway_consent_flows_total', { event: 'approved' })).toBe(1);
    expect(moved('gateway_upstream_grant_events_total', { upstream: 'github', event: 'connected' })).toBe(1);
    expect(moved('gateway_token_checks_total', { outcome: 'ok' })).toBe(1);
    expect(moved('gateway_token_checks_total', { outcome: 'invalid_token' })).toBe(1);
    expect(moved('gateway_mcp_requests_total', { endpoint: 'mcp', method: 'initialize', outcome: 'ok' })).toBe(1);
    expect(moved('gateway_mcp_requests_total', { endpoint: 'mcp', outcome: 'refused' })).toBe(1);
    expect(moved('gateway_mcp_request_duration_seconds_count', { endpoint: 'mcp' })).toBe(2);
    // The passthrough endpoint reaches the upstream itself: its call is counted and timed on both sides.
    const { accessToken: githubToken } = await consentWithConnect('metric-mo', clientId, 'approve', `${gateway.url}/mcp/github`);
    const upstreamBefore = await (await admin('/metrics')).text();
    const initialized = await fetch(`${gateway.url}/mcp/github`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${githubToken}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'metrics-test', version: '1.0.0' } } }),
    });
    expect(initialized.status).toBe(200);
    await initialized.body?.cancel();
    const upstreamAfter = await (await admin('/metrics')).text();
    const movedUpstream = (name: string, labels: Record<string, string>) => sample(upstreamAfter, name, labels) - sample(upstreamBefore, name, labels);
    expect(movedUpstream('gateway_upstream_requests_total', { upstream: 'github', outcome: '2xx' })).toBeGreaterThanOrEqual(1);
    expect(movedUpstream('gateway_upstream_request_duration_seconds_count', { upstream: 'github' })).toBeGreaterThanOrEqual(1);
    expect(movedUpstream('gateway_mcp_requests_total', { endpoint: 'github', method: 'initialize', outcome: 'ok' })).toBe(1);
  }, 60_000);

  it('revokes a user everywhere with the admin command: the token is refused, the upstream revocation is called, each step audited', async () => {
    const clientId = await registerClient(gateway.url, [redirectUri], 'Revoked client');
    const { accessToken } = await consentWithConnect('revoke-rex', clientId);
    expect((await initializeMcp(gateway.url, accessToken)).status).toBe(200);
    const revocationsBefore = github.counters.revocations;

    const printed: string[] = [];
    const env = { GATEWAY_ADMIN_URL: gateway.url, GATEWAY_ADMIN_TOKEN: adminToken };
    expect(await adminCommand(['user', 'revoke-rex', '--json'], env, (text) => printed.push(text))).toBe(0);
    const shown = JSON.parse(printed.pop()!) as { connections: { upstream: string; workflowId: string }[]; consents: { clientId: string }[] };
    expect(shown.connections.map((c) => [c.upstream, c.workflowId])).toEqual([['github', 'grant:revoke-rex:github']]);
    expect(shown.consents.map((c) => c.clientId)).toEqual([clientId]);

    expect(await adminCommand(['revoke-user', 'revoke-rex'], env, (text) => printed.push(text))).toBe(0);
    expect(printed.pop()).toBe(`Revoked revoke-rex: clients ${clientId}; upstreams disconnected github`);

    expect((await initializeMcp(gateway.url, accessToken)).status).toBe(401);
    expect(github.counters.revocations).toBe(revocationsBefore + 1);
    expect(await gateway.store.getUpstreamTokens('revoke-rex', 'github')).toBeUndefined();
    expect(await gateway.store.listConsents('revoke-rex')).toEqual([]);

    const entries = await auditOf('user=revoke-rex');
    const byKind = (kind: string) => entries.filter((entry) => entry.kind === kind);
    expect(byKind('admin.revoke_user')).toHaveLength(1);
    expect(byKind('admin.revoke_user')[0]).toMatchObject({ actor: 'admin', outcome: 'ok' });
    expect(byKind('consent.revoked')).toHaveLength(1);
    expect(byKind('consent.revoked')[0]).toMatchObject({ clientId, actor: 'admin' });
    expect(byKind('upstream.disconnected')).toHaveLength(1);
    expect(byKind('upstream.disconnected')[0]).toMatchObject({ upstream: 'github', flowId: 'grant:revoke-rex:github', actor: 'admin', outcome: 'ok' });
  }, 60_000);

  it('pages the audit trail with its cursor and shows it as a table', async () => {
    const first = await admin('/admin/audit?limit=2');
    const page = (await first.json()) as { entries: AuditEntry[]; nextCursor: string };
    expect(page.entries).toHaveLength(2);
    const second = (await (await admin(`/admin/audit?limit=2&cursor=${page.nextCursor}`)).json()) as { entries: AuditEntry[] };
    expect(second.entries[0]!.id).toBeLessThan(page.entries[1]!.id);
    const printed: string[] = [];
    expect(await adminCommand(['audit', '--user', 'revoke-rex', '--kind', 'admin.revoke_user'], { GATEWAY_ADMIN_URL: gateway.url, GATEWAY_ADMIN_TOKEN: adminToken }, (text) => printed.push(text))).toBe(0);
    expect(printed[0]?.split('\n')[0]).toMatch(/^id +at +kind +userId/);
    expect(printed[0]).toContain('admin.revoke_user');
    expect((await admin('/admin/audit?kind=nonsense')).status).toBe(400);
  });

  it('lists stuck consent flows with the Temporal visibility query', async () => {
    const clientId = await registerClient(gateway.url, [redirectUri], 'Stuck client');
    const driver = new ConsentDriver(gateway.url);
    const { uid } = await driver.start(authorizationUrl(gateway.url, { clientId, redirectUri, pkce: createPkce() }));
    const stuck = async (minutes: number) => {
      const response = await admin(`/admin/flows/stuck?minutes=${minutes}&status=identifying`);
      expect(response.status).toBe(200);
      return (await response.json()) as { query: string; flows: { workflowId: string; userId: string | null; temporalUrl: string | null }[] };
    };
    // Visibility is eventually consistent: ask until the new flow shows up (minutes=0: open for any time at all).
    let found: Awaited<ReturnType<typeof stuck>>['flows'][number] | undefined;
    for (let attempt = 0; attempt < 100 && !found; attempt += 1) {
      found = (await stuck(0)).flows.find((flow) => flow.workflowId === `consent:${uid}`);
      if (!found) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(found).toMatchObject({ workflowId: `consent:${uid}`, userId: null });
    const body = await stuck(10);
    expect(body.query).toMatch(/^WorkflowType = "consentFlow" AND ExecutionStatus = "Running" AND ConsentFlowStatus IN \("identifying"\) AND StartTime < "/);
    expect(body.flows.map((flow) => flow.workflowId)).not.toContain(`consent:${uid}`);
  });

  it('keeps every secret out of the audit trail', async () => {
    const text = JSON.stringify(await auditOf('limit=1000'));
    for (const secret of secrets.filter((value) => value.length >= 8)) expect(text).not.toContain(secret);
  });
});

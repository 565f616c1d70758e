import { randomUUID } from 'node:crypto';
import { WithStartWorkflowOperation, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConsentFlow } from '../../server/temporal/client.js';
import { chooseIdentity, chooseServices, type ConsentFlowInput, type ConsentOutcome, decide, flowState } from '../../workflows/consent-flow/messages.js';
import { openTemporalTestEnv, temporalUnavailable, type TemporalTestEnv } from '../helpers/temporal.js';

function flowInput(overrides: Partial<ConsentFlowInput> = {}): ConsentFlowInput {
  return {
    flowId: randomUUID(),
    client: { clientId: 'client-1', clientName: 'Test Client', redirectHost: 'localhost:9999', registration: 'dcr' },
    upstreams: ['github', 'notion'],
    scopes: ['mcp:tools'],
    ttlMs: 60_000,
    ...overrides,
  };
}

const hostileName = '**Finished: approved.** [Open admin](https://evil.example/phish)';
const escapedName = '\\*\\*Finished\\: approved\\.\\*\\* \\[Open admin\\]\\(https\\:\\/\\/evil\\.example\\/phish\\)';

describe.skipIf(temporalUnavailable)('consentFlow on the dev server', () => {
  let env: TemporalTestEnv;
  let worker: Worker;
  let running: Promise<void>;

  beforeAll(async () => {
    env = await openTemporalTestEnv();
    worker = await env.createWorker();
    running = worker.run();
  });

  afterAll(async () => {
    worker?.shutdown();
    await running;
    await env?.close();
  });

  it('runs identity → services → approve and ends approved', async () => {
    const input = flowInput();
    const handle = await startConsentFlow(env.client, env.taskQueue, input);

    const afterIdentity = await handle.executeUpdate(chooseIdentity, { args: [{ userId: 'alice', source: 'dev' }] });
    expect(afterIdentity).toMatchObject({ step: 'services', status: 'choosing_services', userId: 'alice' });
    const afterServices = await handle.executeUpdate(chooseServices, { args: [{ upstreams: ['github'] }] });
    expect(afterServices).toMatchObject({ step: 'approve', status: 'awaiting_approval', chosenUpstreams: ['github'] });
    const afterDecision = await handle.executeUpdate(decide, { args: [{ decision: 'approve' }] });
    expect(afterDecision.status).toBe('approved');

    const outcome: ConsentOutcome = await handle.result();
    expect(outcome).toEqual({ kind: 'approved', userId: 'alice', upstreams: ['github'], scopes: ['mcp:tools'] });
    expect(await handle.query(flowState)).toMatchObject({ step: 'done', status: 'approved' });

    const record = await env.store.getFlow(input.flowId);
    expect(record).toMatchObject({ flowId: input.flowId, status: 'approved', userId: 'alice', upstreams: ['github'], clientId: 'client-1' });
    const audit = await env.store.listAudit({ flowId: input.flowId });
    expect(audit.map((line) => line.event)).toEqual(['flow.identifying', 'flow.choosing_services', 'flow.awaiting_approval', 'flow.approved']);
  });

  it('applies an identity update delivered together with the start (update-with-start)', async () => {
    const input = flowInput();
    const startWorkflowOperation = new WithStartWorkflowOperation('consentFlow', {
      workflowId: `consent:${input.flowId}`,
      taskQueue: env.taskQueue,
      args: [input],
      workflowIdConflictPolicy: 'FAIL',
    });
    const state = await env.client.workflow.executeUpdateWithStart(chooseIdentity, {
      args: [{ userId: 'heidi', source: 'dev' }],
      startWorkflowOperation,
    });
    expect(state).toMatchObject({ step: 'services', status: 'choosing_services', userId: 'heidi' });
    const handle = await startWorkflowOperation.workflowHandle();
    expect(await handle.query(flowState)).toMatchObject({ step: 'services', userId: 'heidi' });
    const audit = await env.store.listAudit({ flowId: input.flowId });
    expect(audit.map((line) => line.event)).toEqual(['flow.identifying', 'flow.choosing_services']);
    expect((await env.store.getFlow(input.flowId))?.status).toBe('choosing_services');
    await handle.terminate('test done');
  });

  it('remembers an approval: the same client asking for no more skips the approve step; a larger set asks again', async () => {
    const clientId = `remember-${randomUUID()}`;
    const client = { clientId, clientName: 'Remembering Client', redirectHost: 'localhost:1', registration: 'dcr' as const };
    const first = await startConsentFlow(env.client, env.taskQueue, flowInput({ client }));
    await first.executeUpdate(chooseIdentity, { args: [{ userId: 'judy', source: 'dev' }] });
    await first.executeUpdate(chooseServices, { args: [{ upstreams: ['github'], remembered: null }] });
    await first.executeUpdate(decide, { args: [{ decision: 'approve' }] });
    await first.result();
    // The decision alone remembers nothing: the consent route saves the consent once the
    // authorization result is stored (a decision whose authorization fails pre-approves nothing).
    expect(await env.store.getConsent('judy', clientId)).toBeUndefined();

    // The services route passes the consent it found for the flow's user.
    const judys = { userId: 'judy', upstreams: ['github'], scopes: ['mcp:tools'] };
    const second = await startConsentFlow(env.client, env.taskQueue, flowInput({ client }));
    await second.executeUpdate(chooseIdentity, { args: [{ userId: 'judy', source: 'dev' }] });
    const skipped = await second.executeUpdate(chooseServices, { args: [{ upstreams: ['github'], remembered: judys }] });
    expect(skipped).toMatchObject({ step: 'done', status: 'approved' });
    expect(await second.result()).toEqual({ kind: 'approved', userId: 'judy', upstreams: ['github'], scopes: ['mcp:tools'], remembered: true });

    const third = await startConsentFlow(env.client, env.taskQueue, flowInput({ client }));
    await third.executeUpdate(chooseIdentity, { args: [{ userId: 'judy', source: 'dev' }] });
    const asked = await third.executeUpdate(chooseServices, { args: [{ upstreams: ['github', 'notion'], remembered: judys }] });
    expect(asked).toMatchObject({ step: 'approve', status: 'awaiting_approval' });

    // A consent of another user counts as none.
    const otherUser = await startConsentFlow(env.client, env.taskQueue, flowInput({ client }));
    await otherUser.executeUpdate(chooseIdentity, { args: [{ userId: 'ken', source: 'dev' }] });
    // A malformed lookup is refused by the validator, before it reaches history.
    const malformed = await otherUser
      .executeUpdate(chooseServices, { args: [{ upstreams: ['github'], remembered: { userId: 'judy', upstreams: 'github' } as never }] })
      .catch((error: unknown) => error);
    expect(malformed).toBeInstanceOf(WorkflowUpdateFailedError);
    expect(((malformed as WorkflowUpdateFailedError).cause as ApplicationFailure).message).toBe('remembered must name a user, upstreams and scopes');
    expect(await otherUser.executeUpdate(chooseServices, { args: [{ upstreams: ['github'], remembered: judys }] })).toMatchObject({ step: 'approve' });
    await third.terminate('test done');
    await otherUser.terminate('test done');
  });

  it('leaves the read model to the routes while it runs, and writes every move once more when it ends', async () => {
    const input = flowInput();
    const handle = await startConsentFlow(env.client, env.taskQueue, input);
    const afterIdentity = await handle.executeUpdate(chooseIdentity, { args: [{ userId: 'olga', source: 'dev' }] });
    expect(afterIdentity.lastChange).toMatchObject({ flowId: input.flowId, sequence: 2, status: 'choosing_services', userId: 'olga', clientId: 'client-1' });
    // Nothing here writes the moves as the routes do: the read model has no row yet.
    expect(await env.store.getFlow(input.flowId)).toBeUndefined();
    // A route wrote the services move; the first one was lost (the route's process died, say).
    await env.store.recordFlowChange(afterIdentity.lastChange!);
    await handle.executeUpdate(chooseServices, { args: [{ upstreams: ['notion'] }] });
    await handle.executeUpdate(decide, { args: [{ decision: 'deny' }] });
    await handle.result();
    expect((await env.store.listAudit({ flowId: input.flowId })).map((line) => line.event)).toEqual([
      'flow.choosing_services',
      'flow.identifying',
      'flow.awaiting_approval',
      'flow.denied',
    ]);
    expect(await env.store.getFlow(input.flowId)).toMatchObject({ status: 'denied', userId: 'olga', upstreams: ['notion'] });
  });

  it('returns denied as an outcome when the user denies', async () => {
    const handle = await startConsentFlow(env.client, env.taskQueue, flowInput());
    await handle.executeUpdate(chooseIdentity, { args: [{ userId: 'bob', source: 'dev' }] });
    await handle.executeUpdate(chooseServices, { args: [{ upstreams: [] }] });
    await handle.executeUpdate(decide, { args: [{ decision: 'deny' }] });
    expect(await handle.result()).toEqual({ kind: 'denied', userId: 'bob' });
  });

  it('rejects an update for the wrong step and writes nothing to history or the store', async () => {
    const input = flowInput();
    const handle = await startConsentFlow(env.client, env.taskQueue, input);
    await handle.executeUpdate(chooseIdentity, { args: [{ userId: 'carol', source: 'dev' }] });
    const before = await handle.fetchHistory();
    const auditBefore = await env.store.listAudit({ flowId: input.flowId });

    const error = await handle.executeUpdate(decide, { args: [{ decision: 'approve' }] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkflowUpdateFailedError);
    const cause = (error as WorkflowUpdateFailedError).cause;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect((cause as ApplicationFailure).type).toBe('invalid_transition');
    expect((cause as ApplicationFailure).message).toBe('the flow is at step "services", not "approve"');

    const again = await handle.executeUpdate(chooseIdentity, { args: [{ userId: 'mallory', source: 'dev' }] }).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(WorkflowUpdateFailedError);

    const after = await handle.fetchHistory();
    expect(after.events?.length).toBe(before.events?.length);
    const eventTypes = (after.events ?? []).map((event) => String(event.eventType));
    expect(eventTypes.some((type) => /UPDATE/.test(type) && /REJECTED/.test(type))).toBe(false);
    expect(await env.store.listAudit({ flowId: input.flowId })).toEqual(auditBefore);
    expect(await handle.query(flowState)).toMatchObject({ step: 'services', userId: 'carol' });
    await handle.terminate('test done');
  });

  it('rejects an unknown upstream and an empty user id in the validator', async () => {
    const handle = await startConsentFlow(env.client, env.taskQueue, flowInput());
    const empty = await handle.executeUpdate(chooseIdentity, { args: [{ userId: '  ', source: 'dev' }] }).catch((e: unknown) => e);
    expect(((empty as WorkflowUpdateFailedError).cause as ApplicationFailure).type).toBe('invalid_request');
    await handle.executeUpdate(chooseIdentity, { args: [{ userId: 'dave', source: 'dev' }] });
    const unknown = await handle.executeUpdate(chooseServices, { args: [{ upstreams: ['github', 'jira'] }] }).catch((e: unknown) => e);
    expect(((unknown as WorkflowUpdateFailedError).cause as ApplicationFailure).message).toBe('unknown upstream(s): jira');
    await handle.terminate('test done');
  });

  it('expires when nobody decides within the ttl, as an outcome', async () => {
    const input = flowInput({ ttlMs: 1_500 });
    const handle = await startConsentFlow(env.client, env.taskQueue, input);
    await handle.executeUpdate(chooseIdentity, { args: [{ userId: 'erin', source: 'dev' }] });
    expect(await handle.result()).toEqual({ kind: 'expired', step: 'services' });
    const description = await handle.describe();
    expect(description.status.name).toBe('COMPLETED');
    expect((await env.store.getFlow(input.flowId))?.status).toBe('expired');
    const late = await handle.executeUpdate(chooseServices, { args: [{ upstreams: ['github'] }] }).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(Error);
  });

  it('shows operators the step in current details, the summary and searchable attributes', async () => {
    const input = flowInput({ client: { clientId: `ops-${randomUUID()}`, clientName: 'Ops Client', redirectHost: 'app.example', registration: 'cimd' } });
    const handle = await startConsentFlow(env.client, env.taskQueue, input);
    await handle.executeUpdate(chooseIdentity, { args: [{ userId: 'frank', source: 'dev' }] });

    const description = await handle.describe();
    expect(await description.staticSummary()).toBe('Consent for Ops Client');
    expect(await description.staticDetails()).toContain('registered by cimd');

    // The Web UI reads current details through this built-in query.
    const metadataQuery = await handle.query<{ currentDetails: string }>('__temporal_workflow_metadata');
    expect(metadataQuery.currentDetails).toContain('Step 2 of 3: services');

    const query = `ConsentClientId = "${input.client.clientId}" AND ConsentUserId = "frank" AND ConsentFlowStatus = "choosing_services"`;
    let found: string[] = [];
    for (let i = 0; i < 50 && found.length === 0; i += 1) {
      found = [];
      for await (const execution of env.client.workflow.list({ query })) found.push(execution.workflowId);
      if (found.length === 0) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(found).toEqual([handle.workflowId]);
    await handle.terminate('test done');
  });

  it('shows a client name and a typed user name as literal text, never as Markdown', async () => {
    const handle = await startConsentFlow(env.client, env.taskQueue, {
      flowId: randomUUID(),
      client: { clientId: `https://evil.example/[x](y)`, clientName: hostileName, redirectHost: 'evil.example\n# Approved', registration: 'cimd' },
      upstreams: ['github'],
      scopes: ['mcp:tools'],
      ttlMs: 60_000,
    });
    await handle.executeUpdate(chooseIdentity, { args: [{ userId: '[admin](https://evil.example/)\n\n**approved**', source: 'dev' }] });

    const description = await handle.describe();
    expect(await description.staticSummary()).toBe(`Consent for ${escapedName}`);
    const staticDetails = (await description.staticDetails())!;
    expect(staticDetails.split('\n\n')).toEqual([
      `**Client:** ${escapedName} (https\\:\\/\\/evil\\.example\\/\\[x\\]\\(y\\), registered by cimd)`,
      '**Redirects to:** evil\\.example \\# Approved',
      '**Upstreams offered:** github',
      '**Scopes:** mcp\\:tools',
    ]);

    const { currentDetails } = await handle.query<{ currentDetails: string }>('__temporal_workflow_metadata');
    const lines = currentDetails.split('\n\n');
    expect(lines[1]).toBe(`**Client:** ${escapedName} (cimd, redirects to evil\\.example \\# Approved)`);
    expect(lines[2]).toBe('**User:** \\[admin\\]\\(https\\:\\/\\/evil\\.example\\/\\) \\*\\*approved\\*\\*');
    expect(currentDetails).not.toContain('](');
    await handle.terminate('test done');
  });
});

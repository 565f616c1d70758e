import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { projectPath } from '../../server/paths.js';
import { ensureWorkflowBundle } from '../../server/temporal/workflow-bundle.js';

const historiesDir = projectPath('test/histories');

describe('replay of captured histories', () => {
  it.each([
    { bundle: 'untraced', tracing: false },
    { bundle: 'traced', tracing: true },
  ])('replays every history in test/histories with the current workflow code ($bundle bundle)', async ({ tracing }) => {
    const files = (await readdir(historiesDir)).filter((name) => name.endsWith('.json')).sort();
    expect(files).toEqual([
      'consent-flow-approved-v2.json',
      'consent-flow-approved-v3.json',
      'consent-flow-approved-v4.json',
      'consent-flow-approved.json',
      'consent-flow-connect-activities.json',
      'consent-flow-connect-child-v4.json',
      'consent-flow-connect-child.json',
      'consent-flow-remembered-v2.json',
      'consent-flow-remembered-v3.json',
      'consent-flow-remembered-v4.json',
      'consent-flow-update-with-start-expired-v2.json',
      'consent-flow-update-with-start-expired-v3.json',
      'consent-flow-update-with-start-expired-v4.json',
      'consent-flow-update-with-start-expired.json',
      'upstream-grant-reconnect-disconnect.json',
      'upstream-grant-timer-after-refresh.json',
    ]);
    const histories = await Promise.all(
      files.map(async (file) => ({
        workflowId: path.basename(file, '.json'),
        history: JSON.parse(await readFile(path.join(historiesDir, file), 'utf8')) as unknown,
      })),
    );
    const bundle = await ensureWorkflowBundle({ tracing });
    const results: { workflowId: string; error: unknown }[] = [];
    for await (const result of Worker.runReplayHistories({ workflowBundle: { codePath: bundle.codePath } }, histories)) {
      results.push({ workflowId: result.workflowId, error: result.error });
    }
    expect(results).toEqual(files.map((file) => ({ workflowId: path.basename(file, '.json'), error: undefined })));
  });

  it('detects nondeterminism: a history whose activity was swapped for a timer fails to replay', async () => {
    const raw = JSON.parse(await readFile(path.join(historiesDir, 'consent-flow-approved.json'), 'utf8')) as {
      events: Array<Record<string, unknown>>;
    };
    const index = raw.events.findIndex((event) => event.eventType === 'EVENT_TYPE_ACTIVITY_TASK_SCHEDULED' || event.eventType === 'ActivityTaskScheduled');
    expect(index).toBeGreaterThan(0);
    const event = raw.events[index]!;
    const attributes = event.activityTaskScheduledEventAttributes as { activityType: { name: string } };
    attributes.activityType.name = 'somethingElse';
    const bundle = await ensureWorkflowBundle();
    const error = await Worker.runReplayHistory({ workflowBundle: { codePath: bundle.codePath } }, raw).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).name).toBe('DeterminismViolationError');
  });

  it('replays the histories in test/histories/untraced with the current workflow code (untraced bundle, as captured)', async () => {
    // Captured where the workflow code of the time decided by the order its promises settled in,
    // an order the tracing interceptors change: they replay with the bundle they were captured with.
    const dir = path.join(historiesDir, 'untraced');
    const files = (await readdir(dir)).filter((name) => name.endsWith('.json')).sort();
    expect(files).toEqual(['upstream-grant-timer-after-refresh.json']);
    const histories = await Promise.all(
      files.map(async (file) => ({ workflowId: path.basename(file, '.json'), history: JSON.parse(await readFile(path.join(dir, file), 'utf8')) as unknown })),
    );
    const bundle = await ensureWorkflowBundle({ tracing: false });
    const results: { workflowId: string; error: unknown }[] = [];
    for await (const result of Worker.runReplayHistories({ workflowBundle: { codePath: bundle.codePath } }, histories)) {
      results.push({ workflowId: result.workflowId, error: result.error });
    }
    expect(results).toEqual(files.map((file) => ({ workflowId: path.basename(file, '.json'), error: undefined })));
  });
});

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureWorkflowBundle, ensureWorkflowBundles } from '../../../server/temporal/workflow-bundle.js';

const tracingModule = /@temporalio\/interceptors-opentelemetry\/lib\//;

describe('workflow bundles', () => {
  it('runs no tracing code in the untraced bundle and the workflow interceptors in the traced one', async () => {
    const [untraced, traced] = await ensureWorkflowBundles();
    expect(path.basename(untraced.codePath)).toBe('workflow-bundle.js');
    expect(path.basename(traced.codePath)).toBe('workflow-bundle-traced.js');
    expect(await readFile(untraced.codePath, 'utf8')).not.toMatch(tracingModule);
    expect(await readFile(traced.codePath, 'utf8')).toMatch(/@temporalio\/interceptors-opentelemetry\/lib\/workflow-interceptors\.js/);
  });

  it('reuses each built bundle, keyed by its setting', async () => {
    await ensureWorkflowBundles();
    const again = await Promise.all([ensureWorkflowBundle(), ensureWorkflowBundle({ tracing: true })]);
    expect(again.map((bundle) => bundle.built)).toEqual([false, false]);
    expect(again[0].sourceHash).not.toBe(again[1].sourceHash);
  });
});

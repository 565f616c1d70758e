import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../server/config.js';
import { embeddedDevOverrides } from '../../../server/temporal/embedded.js';
import { devServerArgs, loadTemporalDevSettings } from '../../../server/temporal/dev-server.js';

describe('the embedded Temporal dev server', () => {
  it('keeps its database in the data folder GATEWAY_DATA_DIR names', async () => {
    const settings = await loadTemporalDevSettings();
    const config = loadConfig({ env: { GATEWAY_DATA_DIR: '/srv/gateway-a' } });
    const args = devServerArgs(settings, embeddedDevOverrides(config, settings));
    expect(args[args.indexOf('--db-filename') + 1]).toBe(path.join('/srv/gateway-a', 'temporal.db'));
  });

  it('gives two data folders two databases', async () => {
    const settings = await loadTemporalDevSettings();
    const dbOf = (dataDir: string) => embeddedDevOverrides(loadConfig({ env: { GATEWAY_DATA_DIR: dataDir } }), settings).dbFile;
    expect(dbOf('/srv/a')).not.toBe(dbOf('/srv/b'));
  });

  it('takes TEMPORAL_DEV_DB_FILE over the data folder', async () => {
    const settings = await loadTemporalDevSettings();
    const config = loadConfig({ env: { GATEWAY_DATA_DIR: '/srv/gateway-a', TEMPORAL_DEV_DB_FILE: '/var/lib/temporal/dev.db' } });
    expect(embeddedDevOverrides(config, settings).dbFile).toBe('/var/lib/temporal/dev.db');
  });

  it('opens its database file in WAL mode, and sets no pragma on an in-memory database', async () => {
    const settings = await loadTemporalDevSettings();
    expect(settings.sqlitePragmas).toEqual({ journal_mode: 'wal' });
    const onFile = devServerArgs(settings, { dbFile: '/srv/gateway-a/temporal.db' });
    expect(onFile[onFile.indexOf('--sqlite-pragma') + 1]).toBe('journal_mode=wal');
    expect(devServerArgs(settings, { dbFile: null })).not.toContain('--sqlite-pragma');
  });

  it('refuses a pragma value that is not one word', async () => {
    const { mkdtemp, readFile, writeFile, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(path.join(tmpdir(), 'cg-devsettings-'));
    try {
      const file = path.join(dir, 'temporal-dev.yml');
      const yml = await readFile(path.join(import.meta.dirname, '../../../temporal-dev.yml'), 'utf8');
      await writeFile(file, yml.replace('journal_mode: wal', 'journal_mode: "wal --headless"'));
      await expect(loadTemporalDevSettings(file)).rejects.toThrow('server.sqlitePragmas.journal_mode must be a single word or number');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses to start with a database path still relative to a data folder', async () => {
    const settings = await loadTemporalDevSettings();
    expect(() => devServerArgs(settings)).toThrow("the dev server's database temporal.db is relative to a data folder; pass an absolute overrides.dbFile");
  });
});

import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectDir } from '../../server/paths.js';

/** A one-line module that throws from line 1 of `source`, with a linked source map placing it at line 3 there. */
function mappedModule(source: string): { code: string; map: string } {
  return {
    code: `export function fail() { throw new Error('mapped'); }\n//# sourceMappingURL=index.js.map\n`,
    // One segment: generated line 1, column 0 → source 0, line 3 (zero-based 2), column 0.
    map: JSON.stringify({ version: 3, file: 'index.js', sources: [source], sourcesContent: ['\n\nexport function fail(): never { throw new Error("mapped"); }\n'], names: [], mappings: 'AAEA' }),
  };
}

/** Node 22.14 and later: `module.setSourceMapsSupport`, which can leave node_modules out. */
const nodeKnowsPackages = 'setSourceMapsSupport' in (await import('node:module')).default;

describe('scripts/source-maps.mjs', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-source-maps-'));
    for (const [folder, source] of [
      ['own', 'own.ts'],
      ['node_modules/dependency', 'dependency.ts'],
    ] as const) {
      await mkdir(path.join(dir, folder), { recursive: true });
      const { code, map } = mappedModule(source);
      await writeFile(path.join(dir, folder, 'index.js'), code);
      await writeFile(path.join(dir, folder, 'index.js.map'), map);
      await writeFile(path.join(dir, folder, 'package.json'), '{"type":"module"}');
    }
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs node with the preload as scripts/run-server.sh does; prints what Node holds of each module's map, and its stack. */
  async function preloaded(): Promise<Record<'own' | 'dependency', { map: boolean; stack: string }>> {
    const probe = `
      import module from 'node:module';
      import { pathToFileURL } from 'node:url';
      const result = {};
      for (const [name, folder] of [['own', 'own'], ['dependency', 'node_modules/dependency']]) {
        const url = pathToFileURL(${JSON.stringify(dir)} + '/' + folder + '/index.js').href;
        const { fail } = await import(url);
        let stack = '';
        try { fail(); } catch (error) { stack = error.stack; }
        result[name] = { map: module.findSourceMap(url) !== undefined, stack };
      }
      console.log(JSON.stringify(result));`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', './scripts/source-maps.mjs', '--input-type=module', '--eval', probe], { cwd: projectDir });
    return JSON.parse(stdout);
  }

  it("maps the stack traces of the gateway's own built code to its sources", async () => {
    const { own } = await preloaded();
    expect(own.map).toBe(true);
    expect(own.stack).toMatch(/own\.ts:3:/);
  });

  it('leaves the source maps of packages under node_modules unread where Node tells them apart (22.14 and later), else reads them as --enable-source-maps does', async () => {
    const { dependency } = await preloaded();
    expect(dependency.map).toBe(!nodeKnowsPackages);
    expect(dependency.stack).toMatch(nodeKnowsPackages ? /node_modules\/dependency\/index\.js:1:/ : /dependency\.ts:3:/);
  });
});

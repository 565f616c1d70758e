/**
 * Checks the import boundaries of STYLE.md: what each top-level folder may import, `import type`
 * included where a type would point the wrong way (server → web, activities → server internals,
 * config → the rest of the server), and that only `server/config.ts` reads `process.env`. Prints
 * each violation as `file:line: message`.
 */
import { readdir, readFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import path from 'node:path';
import ts from 'typescript';

/** One broken rule. */
export interface Violation {
  file: string;
  line: number;
  message: string;
}

const builtins = new Set(builtinModules.flatMap((name) => [name, `node:${name}`]));

function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier);
}

interface ImportRef {
  specifier: string;
  typeOnly: boolean;
  line: number;
}

function collect(source: ts.SourceFile): { imports: ImportRef[]; envReads: number[] } {
  const imports: ImportRef[] = [];
  const envReads: number[] = [];
  const lineOf = (node: ts.Node) => source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const typeOnly =
        clause?.isTypeOnly === true ||
        (clause !== undefined &&
          clause.name === undefined &&
          clause.namedBindings !== undefined &&
          ts.isNamedImports(clause.namedBindings) &&
          clause.namedBindings.elements.length > 0 &&
          clause.namedBindings.elements.every((element) => element.isTypeOnly));
      imports.push({ specifier: node.moduleSpecifier.text, typeOnly, line: lineOf(node) });
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      imports.push({ specifier: node.moduleSpecifier.text, typeOnly: node.isTypeOnly, line: lineOf(node) });
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = node.arguments;
      if (arg && ts.isStringLiteral(arg)) imports.push({ specifier: arg.text, typeOnly: false, line: lineOf(node) });
    } else if (
      ts.isPropertyAccessExpression(node) &&
      node.name.text === 'env' &&
      ts.isIdentifier(node.expression) &&
      node.expression.text === 'process'
    ) {
      envReads.push(lineOf(node));
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return { imports, envReads };
}

/**
 * Config is a leaf: `server/config.ts`, its parts under `server/config/` and `server/paths.ts` (where
 * the project is) import nothing else of the project, so every other module may read the config.
 */
function isConfigLeaf(rel: string): boolean {
  return rel === 'server/config.ts' || rel.startsWith('server/config/') || rel === 'server/paths.ts';
}

function withoutExtension(rel: string): string {
  return rel.replace(/\.(js|ts|mjs|mts)$/, '');
}

/**
 * Shared leaves: modules that import no value but other shared leaves' (types are fine), so the
 * browser bundle and the activities may take their values too: the consent flow's step table, the
 * JSON views the pages read, the sealing labels of upstream tokens, the DPoP algorithm choice.
 */
function isSharedLeaf(rel: string): boolean {
  return rel === 'workflows/consent-flow/steps.ts' || /^server\/views\/[^/]+\.ts$/.test(rel) || rel === 'server/store/sealed-labels.ts' || rel === 'server/dpop-algorithm.ts';
}

/** The rules for one file, given its path relative to the project folder. */
function checkFile(rel: string, text: string): Violation[] {
  const source = ts.createSourceFile(rel, text, ts.ScriptTarget.Latest, true);
  const { imports, envReads } = collect(source);
  const top = rel.split('/')[0] ?? '';
  const violations: Violation[] = [];
  const fail = (line: number, message: string) => violations.push({ file: rel, line, message });

  if (['workflows', 'activities', 'server', 'web'].includes(top) && rel !== 'server/config.ts') {
    for (const line of envReads) fail(line, 'process.env is read only by server/config.ts; take the value from the config');
  }

  for (const ref of imports) {
    const relative = ref.specifier.startsWith('.');
    const target = relative ? path.posix.normalize(path.posix.join(path.posix.dirname(rel), ref.specifier)) : undefined;
    const targetTop = target?.split('/')[0];
    const pkg = relative ? undefined : packageName(ref.specifier);
    const toLeaf = target !== undefined && isSharedLeaf(`${withoutExtension(target)}.ts`);
    if (isSharedLeaf(rel) && !ref.typeOnly && !toLeaf) {
      fail(ref.line, `a shared leaf (bundled for the browser, read by activities) imports values only from other shared leaves, not ${ref.specifier}`);
    }
    switch (top) {
      case 'workflows': {
        if (relative) {
          if (targetTop === 'activities' && ref.typeOnly) break;
          if (targetTop !== 'workflows') fail(ref.line, `workflows may import only their own files (and \`import type\` from activities), not ${ref.specifier}`);
        } else if (pkg !== '@temporalio/workflow' && pkg !== '@temporalio/common') {
          fail(ref.line, `workflows must stay deterministic: ${builtins.has(ref.specifier) ? 'Node built-in' : 'package'} ${ref.specifier} is not allowed (only @temporalio/workflow and @temporalio/common)`);
        }
        break;
      }
      case 'activities': {
        // Activities declare the narrow inputs they take; the worker passes the gateway's objects.
        if (relative && targetTop === 'server' && !toLeaf && (!target?.startsWith('server/store/') || !ref.typeOnly)) {
          fail(ref.line, `activities may import only the store interface types (\`import type\` from server/store/) and shared leaves, not ${ref.specifier}`);
        }
        if (relative && targetTop === 'workflows' && !ref.typeOnly) fail(ref.line, 'activities must not import workflow code');
        if (pkg && (pkg === 'koa' || pkg.startsWith('@koa/') || pkg === '@temporalio/client' || pkg === '@temporalio/worker' || pkg === 'lit')) {
          fail(ref.line, `activities must not import ${pkg}`);
        }
        break;
      }
      case 'server': {
        if (relative && targetTop === 'workflows' && !ref.typeOnly) {
          // Each workflow's messages (and the consent flow's step table) sit beside its body, which stays out.
          if (!/^workflows\/([^/]+\/(messages|steps)|markdown)(\.js|\.ts)?$/.test(target ?? '')) {
            fail(ref.line, `server may import only a workflow's messages (workflows/<workflow>/messages.ts, steps.ts) and workflows/markdown.ts, not ${ref.specifier}`);
          }
        }
        if (relative && targetTop === 'activities' && !ref.typeOnly && rel !== 'server/temporal/worker.ts') {
          fail(ref.line, 'only the worker entry (server/temporal/worker.ts) may import activities');
        }
        if (relative && targetTop === 'web') fail(ref.line, `server must not import web, not even types (the views server and web share live in server/views/): ${ref.specifier}`);
        if (relative && isConfigLeaf(rel) && target && !isConfigLeaf(`${withoutExtension(target)}.ts`)) {
          fail(ref.line, `config is a leaf: it imports only its own parts (server/config/) and server/paths.ts, not ${ref.specifier}`);
        }
        break;
      }
      case 'web': {
        if (relative && targetTop !== 'web' && !ref.typeOnly && !toLeaf) {
          fail(ref.line, `web may import only its own files and shared leaves (types from elsewhere), not ${ref.specifier}`);
        }
        if (pkg && pkg !== 'lit' && !pkg.startsWith('@lit/') && !ref.typeOnly) fail(ref.line, `web may import only lit, not ${ref.specifier}`);
        break;
      }
    }
  }
  return violations;
}

async function sourceFiles(root: string, dir: string): Promise<string[]> {
  const entries = await readdir(path.join(root, dir), { withFileTypes: true, recursive: true }).catch(() => []);
  return entries
    .filter((entry) => entry.isFile() && /\.(ts|mts|js|mjs)$/.test(entry.name) && !entry.name.endsWith('.d.ts'))
    .map((entry) => path.relative(root, path.join(entry.parentPath, entry.name)).split(path.sep).join('/'));
}

/** Checks every source file under `root`'s workflows/, activities/, server/ and web/. */
export async function checkImports(root: string): Promise<Violation[]> {
  const violations: Violation[] = [];
  for (const dir of ['workflows', 'activities', 'server', 'web']) {
    for (const rel of await sourceFiles(root, dir)) {
      violations.push(...checkFile(rel, await readFile(path.join(root, rel), 'utf8')));
    }
  }
  return violations;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const root = path.resolve(process.argv[2] ?? path.join(path.dirname(new URL(import.meta.url).pathname), '..'));
  const violations = await checkImports(root);
  for (const v of violations) console.error(`${v.file}:${v.line}: ${v.message}`);
  if (violations.length > 0) {
    console.error(`\n${violations.length} import-boundary violation(s)`);
    process.exit(1);
  }
  console.log('import boundaries: ok');
}

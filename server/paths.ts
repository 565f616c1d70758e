import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The nearest folder at or above `start` that holds package.json (works from sources and from the built server). */
function findProjectDir(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'temporal-dev.yml'))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(start, '..');
  }
}

/** Absolute path of the project folder (the one holding package.json). */
export const projectDir = findProjectDir(path.dirname(fileURLToPath(import.meta.url)));

/** Resolves a path relative to the project folder; absolute paths are returned unchanged. */
export function projectPath(...parts: string[]): string {
  return path.resolve(projectDir, ...parts);
}

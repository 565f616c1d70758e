import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** Absolute path of the project folder (the one holding package.json). */
export const projectDir = fileURLToPath(new URL('..', import.meta.url));

/** Resolves a path relative to the project folder; absolute paths are returned unchanged. */
export function projectPath(...parts: string[]): string {
  return path.resolve(projectDir, ...parts);
}

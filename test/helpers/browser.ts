import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/** Debian's Chromium, the only browser tests drive; playwright never downloads one here. */
export const DEFAULT_CHROMIUM_PATH = '/usr/bin/chromium';

/** Flags for a quiet, offline, headless Chromium in a container (no sandbox, no GPU, no QUIC). */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
] as const;

/** A running headless Chromium with a fresh profile. */
export interface TestBrowser {
  readonly browser: Browser;
  /** A new tab in the browser's default context: tabs opened this way share one cookie jar. */
  newPage(): Promise<Page>;
  /** A context with a cookie jar of its own: "another browser" for the same user or another one. */
  newContext(): Promise<BrowserContext>;
  /** Close the browser and remove its temporary folder. */
  close(): Promise<void>;
}

/** Where Chromium is expected: `$CHROMIUM_PATH`, else {@link DEFAULT_CHROMIUM_PATH}. */
export function chromiumPath(): string {
  return process.env['CHROMIUM_PATH'] || DEFAULT_CHROMIUM_PATH;
}

/** Whether {@link chromiumPath} names an executable file. */
export function chromiumAvailable(): boolean {
  try {
    accessSync(chromiumPath(), constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Launch headless Chromium from {@link chromiumPath} with {@link CHROMIUM_FLAGS}. Each launch gets
 * its own temporary folder for downloads and traces (playwright gives each launch a fresh profile
 * of its own too); both are gone after `close()`.
 */
export async function launchBrowser(): Promise<TestBrowser> {
  const artifactsDir = await mkdtemp(join(tmpdir(), 'test-browser-'));
  let browser: Browser;
  try {
    browser = await chromium.launch({
      executablePath: chromiumPath(),
      headless: true,
      args: [...CHROMIUM_FLAGS],
      downloadsPath: join(artifactsDir, 'downloads'),
      tracesDir: join(artifactsDir, 'traces'),
    });
  } catch (error) {
    await rm(artifactsDir, { recursive: true, force: true });
    throw error;
  }
  let defaultContext: Promise<BrowserContext> | undefined;
  return {
    browser,
    async newPage() {
      defaultContext ??= browser.newContext();
      return (await defaultContext).newPage();
    },
    newContext() {
      return browser.newContext();
    },
    async close() {
      try {
        await browser.close();
      } finally {
        await rm(artifactsDir, { recursive: true, force: true });
      }
    },
  };
}

/**
 * Takes a screenshot of each consent screen from a running gateway (`npm start`) into docs/,
 * driving Debian's Chromium: `node --import tsx scripts/take-screenshots.ts [http://localhost:3000]`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { chromium } from 'playwright-core';
import { projectPath } from '../server/paths.js';

const base = process.argv[2] ?? 'http://localhost:3000';
const redirectUri = 'http://127.0.0.1:6274/oauth/callback';
const registration = await fetch(`${base}/reg`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ client_name: 'MCP Inspector', redirect_uris: [redirectUri], token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] }),
});
const { client_id: clientId } = (await registration.json()) as { client_id: string };
const verifier = randomBytes(32).toString('base64url');
const authorize = new URL(`${base}/auth`);
authorize.search = new URLSearchParams({
  response_type: 'code',
  client_id: clientId,
  redirect_uri: redirectUri,
  code_challenge: createHash('sha256').update(verifier).digest('base64url'),
  code_challenge_method: 'S256',
  scope: 'mcp:tools',
  resource: `${base}/mcp`,
  state: randomBytes(8).toString('hex'),
}).toString();

const docs = projectPath('docs');
await mkdir(docs, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 900, height: 760 } });
await page.goto(authorize.href);
await page.getByRole('heading', { name: 'Sign in' }).waitFor();
await page.getByLabel('User name').fill('alice');
await page.screenshot({ path: `${docs}/consent-1-sign-in.png` });
await page.getByRole('button', { name: 'Continue' }).click();
await page.getByRole('heading', { name: 'Choose services' }).waitFor();
await page.screenshot({ path: `${docs}/consent-2-services.png` });
await page.getByRole('button', { name: 'Continue' }).click();
await page.getByRole('heading', { name: 'Approve access' }).waitFor();
await page.screenshot({ path: `${docs}/consent-3-approve.png` });
await browser.close();
console.log(`screenshots written to ${docs}`);

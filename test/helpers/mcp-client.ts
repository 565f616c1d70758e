import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError, type OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import type { Page } from 'playwright-core';

/** What arrived at the MCP client's redirect URI. */
export interface CallbackResult {
  code: string | null;
  state: string | null;
  iss: string | null;
  error: string | null;
  errorDescription: string | null;
}

/** A loopback redirect URI that records each authorization response. */
export interface CallbackServer {
  url: string;
  next(): Promise<CallbackResult>;
  close(): Promise<void>;
}

/** Serves `/callback` on a free loopback port. */
export async function startCallbackServer(host = '127.0.0.1'): Promise<CallbackServer> {
  const waiting: Array<(result: CallbackResult) => void> = [];
  const arrived: CallbackResult[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/callback') {
      res.writeHead(404).end();
      return;
    }
    const result: CallbackResult = {
      code: url.searchParams.get('code'),
      state: url.searchParams.get('state'),
      iss: url.searchParams.get('iss'),
      error: url.searchParams.get('error'),
      errorDescription: url.searchParams.get('error_description'),
    };
    const resolve = waiting.shift();
    if (resolve) resolve(result);
    else arrived.push(result);
    res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>Done</title><h1>Authorization complete</h1>');
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host}:${port}/callback`,
    next: () => {
      const ready = arrived.shift();
      return ready ? Promise.resolve(ready) : new Promise((resolve) => waiting.push(resolve));
    },
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** An in-memory OAuthClientProvider for the MCP SDK client, as an MCP host application would keep one. */
export class TestOAuthProvider implements OAuthClientProvider {
  authorizationUrl: URL | undefined;
  savedTokens: OAuthTokens | undefined;
  private information: OAuthClientInformationMixed | undefined;
  private verifier = '';
  readonly clientMetadataUrl: string | undefined;

  constructor(
    private readonly options: {
      redirectUrl: string;
      clientName?: string;
      /** A CIMD client: its https client_id URL. */
      clientMetadataUrl?: string;
      /** A pre-registered client. */
      clientInformation?: OAuthClientInformationMixed;
    },
  ) {
    this.clientMetadataUrl = options.clientMetadataUrl;
    this.information = options.clientInformation;
  }

  get redirectUrl(): string {
    return this.options.redirectUrl;
  }

  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: this.options.clientName ?? 'Test MCP Client',
      redirect_uris: [this.options.redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  clientInformation(): OAuthClientInformationMixed | undefined {
    return this.information;
  }

  saveClientInformation(information: OAuthClientInformationMixed): void {
    this.information = information;
  }

  tokens(): OAuthTokens | undefined {
    return this.savedTokens;
  }

  saveTokens(tokens: OAuthTokens): void {
    this.savedTokens = tokens;
  }

  redirectToAuthorization(authorizationUrl: URL): void {
    this.authorizationUrl = authorizationUrl;
  }

  saveCodeVerifier(codeVerifier: string): void {
    this.verifier = codeVerifier;
  }

  codeVerifier(): string {
    return this.verifier;
  }
}

/** Connects an SDK client to `mcpUrl`; on 401 it returns the authorization URL to visit instead. */
export async function connectMcp(mcpUrl: string, provider: TestOAuthProvider): Promise<{ client: Client; transport: StreamableHTTPClientTransport } | { authorizationUrl: URL; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
  const client = new Client({ name: 'consent-gateway-test', version: '1.0.0' });
  try {
    await client.connect(transport);
    return { client, transport };
  } catch (error) {
    if (provider.authorizationUrl && error instanceof UnauthorizedError) return { authorizationUrl: provider.authorizationUrl, transport };
    throw error;
  }
}

/** Clicks through the consent screens by accessible name, as a user would. */
export async function consentInBrowser(
  page: Page,
  authorizationUrl: URL | string,
  options: { user: string; decision?: 'approve' | 'deny'; services?: 'keep' | 'none' },
): Promise<void> {
  await page.goto(String(authorizationUrl));
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByLabel('User name').fill(options.user);
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByRole('heading', { name: 'Choose services' }).waitFor();
  if (options.services === 'none') {
    for (const box of await page.getByRole('checkbox').all()) await box.uncheck();
  }
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByRole('heading', { name: 'Approve access' }).waitFor();
  await page.getByRole('button', { name: options.decision === 'deny' ? 'Deny' : 'Approve' }).click();
}

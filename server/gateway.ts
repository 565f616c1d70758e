import type { Server } from 'node:http';
import type { Client } from '@temporalio/client';
import type Koa from 'koa';
import { createApp } from './app.js';
import { answerClientErrors } from './client-errors.js';
import type { GatewayConfig } from './config.js';
import type { Logger } from './log.js';
import { createMcpEndpoint } from './mcp/endpoint.js';
import { createPassthroughEndpoint } from './mcp/passthrough.js';
import { createOAuthServer, type OAuthServer } from './oauth/provider.js';
import { loadServerKeys, type ServerKeys } from './oauth/server-keys.js';
import type { TemporalHealth } from './routes/health.js';
import type { GatewayStore } from './store/store.js';
import type { TokenCipher } from './crypto/token-cipher.js';
import { upstreamTokens } from './upstream-tokens.js';
import { brokeredTokens } from './upstream-brokered/index.js';
import { IdpTokens } from './identity/idp-tokens.js';
import { idpCallbackPath, OidcLogin } from './identity/oidc-login.js';
import { PendingLogins } from './identity/pending-logins.js';
import { ensureWebBundle } from './web-bundle.js';
import { createAuditLog, stdoutLine } from './audit/audit-log.js';
import { startMetricsServer } from './routes/metrics.js';

/** A gateway web app with everything it serves, and how to stop it. */
export interface Gateway {
  app: Koa;
  /** Serves the app on `port` and `host`; resolves once it listens. */
  listen(port: number, host: string): Promise<Server>;
  oauth: OAuthServer;
  mcpSessions(): number;
  close(): Promise<void>;
}

/** Assembles the web side of the gateway: OAuth server, consent screens, `/mcp`, health. */
export async function createGateway(
  config: GatewayConfig,
  deps: {
    store: GatewayStore;
    cipher: TokenCipher;
    /** Loaded from config or the data folder when absent. */
    keys?: ServerKeys;
    temporal: Client;
    log: Logger;
    temporalHealth: () => Promise<TemporalHealth>;
    workerState?: () => string;
    temporalUiUrl?: string | undefined;
  },
): Promise<Gateway> {
  const [keys, web] = await Promise.all([deps.keys ?? loadServerKeys(config, deps.log), ensureWebBundle()]);
  const oauth = createOAuthServer(config, { store: deps.store, log: deps.log, keys });
  const audit = createAuditLog({ store: deps.store, log: deps.log, stdout: config.operations.auditStdout ? stdoutLine : undefined });
  (oauth.provider as unknown as { on(event: string, listener: (ctx: { ip?: string }, client: { clientId: string }) => void): void }).on(
    'registration_create.success',
    (ctx, client) => void audit.record({ kind: 'client.registered', clientId: client.clientId, sourceIp: ctx.ip ?? null }),
  );
  const metricsServer = config.operations.metricsPort === undefined ? undefined : await startMetricsServer(config.http.host, config.operations.metricsPort);
  const tokens = upstreamTokens({
    store: deps.store,
    cipher: deps.cipher,
    upstreams: config.upstreams,
    temporal: { client: deps.temporal, taskQueue: config.temporal.taskQueue, log: deps.log, requestTimeoutMs: config.temporal.requestTimeoutMs },
    publicUrl: config.http.publicUrl,
    brokered: brokeredTokens({
      upstreams: config.upstreams,
      idpTokens: config.identity.mode === 'oidc' ? new IdpTokens(deps.store.oauth, deps.cipher) : undefined,
      idp: config.identity.mode === 'oidc' && config.identity.oidc ? new OidcLogin({ ...config.identity.oidc, redirectUri: `${config.http.publicUrl}${idpCallbackPath}`, pending: new PendingLogins(deps.store.oauth) }) : undefined,
      log: deps.log,
    }),
  });
  const endpointOptions = {
    separator: config.mcp.toolSeparator,
    maxBodyBytes: config.mcp.maxBodyBytes,
    log: deps.log,
    upstreamHeaders: tokens.headers,
    upstreamUnauthorized: tokens.unauthorized,
    upstreamInsufficientScope: tokens.insufficientScope,
    awaitElicitation: async (elicitationId: string, signal: AbortSignal) => {
      // The callback route marks it complete in the store; the store is shared by every process.
      while (!signal.aborted) {
        const elicitation = await deps.store.getElicitation(elicitationId);
        if (!elicitation || elicitation.expiresAt <= Date.now() / 1000) return false;
        if (elicitation.completedAt !== null) return true;
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      return false;
    },
  };
  const aggregate = createMcpEndpoint(endpointOptions);
  // /mcp/<upstream> for a client of the era its upstream does not speak: names untouched, and no
  // 2025 leg to look for (a 2025 client reaches it only when the upstream refused 2025).
  const bridge = createMcpEndpoint({ ...endpointOptions, naming: 'untouched', legacyLegs: false });
  // The user's 2025 streams may be held by any process: the completion goes out on the store's
  // event channel, and each process (this one included) tells the sessions it holds.
  const stopHearing = deps.store.events.subscribe((event) => {
    if (event.kind !== 'elicitation-completed') return;
    const clientId = event.clientId ?? undefined;
    void Promise.all([aggregate.elicitationCompleted(event.userId, clientId, event.elicitationId), bridge.elicitationCompleted(event.userId, clientId, event.elicitationId)]).catch(
      (error: unknown) => deps.log.warn('could not notify the MCP sessions', { error: String(error) }),
    );
  });
  const mcp = {
    middleware: aggregate.middleware,
    elicitationCompleted: async (userId: string, clientId: string | undefined, elicitationId: string) => {
      await deps.store.events.publish({ kind: 'elicitation-completed', userId, clientId: clientId ?? null, elicitationId });
      return 0;
    },
  };
  const passthrough = createPassthroughEndpoint({
    log: deps.log,
    upstreamHeaders: tokens.headers,
    upstreamUnauthorized: tokens.unauthorized,
    upstreamInsufficientScope: tokens.insufficientScope,
    sessionKeys: deps.cipher.deriveKeys('mcp-session-id'),
    maxBodyBytes: config.mcp.maxBodyBytes,
    bridge,
  });
  const app = createApp(config, {
    log: deps.log,
    store: deps.store,
    temporalHealth: deps.temporalHealth,
    ...(deps.workerState ? { workerState: deps.workerState } : {}),
    temporalUiUrl: deps.temporalUiUrl,
    gateway: { oauth, cipher: deps.cipher, temporal: deps.temporal, cookieKeys: keys.cookieKeys, mcp, passthrough, assetsDir: web.outDir, audit },
  });
  const purge = setInterval(() => {
    deps.store.oauth.purgeExpired(Math.floor(Date.now() / 1000)).catch((error: unknown) => deps.log.warn('purge failed', { error: String(error) }));
  }, 10 * 60_000);
  purge.unref();
  return {
    app,
    listen: (port, host) =>
      new Promise<Server>((resolve, reject) => {
        const server = app.listen(port, host, () => resolve(server));
        server.once('error', reject);
        answerClientErrors(server);
      }),
    oauth,
    mcpSessions: () => aggregate.sessionCount() + bridge.sessionCount(),
    close: async () => {
      clearInterval(purge);
      stopHearing();
      metricsServer?.close();
      passthrough.close();
      await Promise.all([aggregate.close(), bridge.close()]);
    },
  };
}

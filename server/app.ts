import type { Client } from '@temporalio/client';
import Koa from 'koa';
import type { GatewayConfig } from './config.js';
import { NotFoundError, OAuthError } from './errors.js';
import type { Logger } from './log.js';
import { bearerAuth } from './middleware/bearer-auth.js';
import { hostOriginGuard } from './middleware/host-origin-guard.js';
import { createBrowserBinding } from './middleware/browser-binding.js';
import { errorHandler } from './middleware/errors.js';
import { securityHeaders } from './middleware/security-headers.js';
import type { PassthroughEndpoint } from './mcp/passthrough.js';
import { mcpScope, offlineAccessScope, type OAuthServer } from './oauth/provider.js';
import type { TokenCipher } from './crypto/token-cipher.js';
import { assetRoutes } from './routes/assets.js';
import { connectionsRoutes } from './routes/connections.js';
import { clientMetadataRoutes } from './routes/client-metadata.js';
import { connectRoutes } from './routes/connect.js';
import { interactionRoutes } from './routes/interaction.js';
import { upstreamCallbackRoutes } from './routes/upstream-callback.js';
import { healthRoutes, type HealthDeps } from './routes/health.js';
import { homeRoutes } from './routes/home.js';
import { wellKnownRoutes } from './routes/well-known.js';
import { adminRoutes } from './routes/admin.js';
import { metricsRoutes } from './routes/metrics.js';
import type { AuditRecorder } from './audit/audit-log.js';
import { countTokenCheck, methodLabel, recordMcpRequest, statusOutcome } from './metrics.js';
import { traceRequests } from './tracing.js';
import { authorizationLimit, clientAddressOf, createGatewayLimits } from './limits/gateway-limits.js';
import { flowAdmission } from './middleware/flow-admission.js';
import { temporalDeadline } from './middleware/temporal-deadline.js';
import { idpCallbackPath } from './identity/oidc-login.js';

/** The MCP endpoint as the app mounts it (behind the bearer check). */
export interface McpMount {
  middleware: (ctx: Koa.Context, next: Koa.Next) => Promise<void>;
  /** Tells the user's MCP sessions that a URL elicitation completed. */
  elicitationCompleted?(userId: string, clientId: string | undefined, elicitationId: string): Promise<number>;
}

/** The parts of a full gateway; absent in apps that only serve health (tests of that alone). */
export interface GatewayParts {
  oauth: OAuthServer;
  cipher: TokenCipher;
  temporal: Client;
  cookieKeys: string[];
  mcp: McpMount;
  /** `/mcp/<upstream>`: one upstream, names untouched. */
  passthrough: PassthroughEndpoint;
  assetsDir: string;
  /** Where audited actions are recorded. */
  audit: AuditRecorder;
}

/** What the web app needs from the running gateway. */
export interface AppDeps extends HealthDeps {
  log: Logger;
  /** The Temporal Web UI, linked from the home page when known. */
  temporalUiUrl?: string | undefined;
  gateway?: GatewayParts;
}

/** Builds the gateway's Koa app: its own routes first, then the OAuth server for the rest. */
export function createApp(config: GatewayConfig, deps: AppDeps): Koa {
  const app = new Koa();
  app.proxy = config.http.publicUrl.startsWith('https:');
  // Errors are rendered by errorHandler; Koa's default logger would print them a second time.
  app.silent = true;
  // Outside the error handler, so a span ends with the status the client was sent.
  app.use(traceRequests({ mcpUpstreams: config.upstreams.map((upstream) => upstream.name) }));
  app.use(errorHandler(deps.log));
  app.use(clientAddressOf(config.http.trustedProxyHops));
  app.use(securityHeaders());
  const routers = [healthRoutes(deps), homeRoutes(config, deps)];
  if (config.operations.metricsPort === undefined) routers.push(metricsRoutes(config.operations.adminToken));
  const gateway = deps.gateway;
  const requireBearer = gateway ? bearerAuth({ oauth: gateway.oauth, store: deps.store, upstreams: config.upstreams, toolSeparator: config.mcp.toolSeparator, log: deps.log }) : undefined;
  const limits = gateway ? createGatewayLimits(config, deps.store) : undefined;
  if (gateway && requireBearer && limits) {
    const binding = createBrowserBinding({ publicUrl: config.http.publicUrl, store: deps.store, cookieKeys: gateway.cookieKeys });
    routers.push(
      wellKnownRoutes(gateway.oauth, config.upstreams),
      assetRoutes(gateway.assetsDir),
      clientMetadataRoutes(config),
      connectRoutes({ config, oauth: gateway.oauth, temporal: gateway.temporal, store: deps.store, cipher: gateway.cipher, log: deps.log, binding }),
      interactionRoutes({ config, oauth: gateway.oauth, temporal: gateway.temporal, store: deps.store, log: deps.log, binding, cipher: gateway.cipher, audit: gateway.audit, limits }),
      upstreamCallbackRoutes({ config, temporal: gateway.temporal, store: deps.store, log: deps.log, binding, cipher: gateway.cipher, mcp: gateway.mcp, audit: gateway.audit }),
      connectionsRoutes({ config, oauth: gateway.oauth, store: deps.store, log: deps.log, binding, forgetConsent: requireBearer.forgetConsent, temporal: gateway.temporal, audit: gateway.audit }),
      adminRoutes({
        config,
        store: deps.store,
        temporal: gateway.temporal,
        audit: gateway.audit,
        temporalUiUrl: config.operations.temporalUiUrl ?? deps.temporalUiUrl,
        revocation: {
          provider: gateway.oauth.provider,
          store: deps.store,
          forgetConsent: requireBearer.forgetConsent,
          temporal: gateway.temporal,
          taskQueue: config.temporal.taskQueue,
          log: deps.log,
          audit: gateway.audit,
        },
      }),
    );
  }
  // The MCP endpoints come first: they are the hot path, and no router below serves their paths.
  if (gateway && requireBearer) {
    const guard = hostOriginGuard(config.http);
    app.use(async function mcp(ctx, next) {
      if (ctx.path !== '/mcp' && !ctx.path.startsWith('/mcp/')) return next();
      const endpoint = gateway.oauth.resources.ofPath(ctx.path);
      if (!endpoint) {
        ctx.status = 404;
        ctx.body = { jsonrpc: '2.0', error: { code: -32000, message: `No MCP endpoint at ${ctx.path.slice(0, 80)}: use /mcp, or /mcp/<upstream> for one of: ${config.upstreams.map((upstream) => upstream.name).join(', ')}` }, id: null };
        return;
      }
      await guard(ctx, async () => {
        if (ctx.method === 'OPTIONS') {
          corsPreflight(ctx);
          return;
        }
        ctx.set('Access-Control-Allow-Origin', '*');
        ctx.set('Access-Control-Expose-Headers', 'Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate');
        ctx.state.mcpEndpoint = endpoint;
        const started = performance.now();
        const label = endpoint.target.kind === 'aggregate' ? 'mcp' : endpoint.target.upstream;
        let checked = false;
        try {
          await requireBearer(ctx, () => {
            checked = true;
            countTokenCheck('ok');
            return endpoint.target.kind === 'aggregate' ? gateway.mcp.middleware(ctx, next) : gateway.passthrough.middleware(ctx, next);
          });
        } catch (error) {
          if (!checked) countTokenCheck(error instanceof OAuthError ? error.errorCode : 'server_error');
          recordMcpRequest(label, methodLabel(ctx.get('mcp-method') || (ctx.state as { mcpMethod?: string }).mcpMethod, ctx.method), statusOutcome(error instanceof OAuthError ? error.status : 500), (performance.now() - started) / 1000);
          throw error;
        }
        recordMcpRequest(label, methodLabel(ctx.get('mcp-method') || (ctx.state as { mcpMethod?: string }).mcpMethod, ctx.method), statusOutcome(ctx.status), (performance.now() - started) / 1000);
      });
    });
  }
  app.use(async function notFound(ctx, next) {
    await next();
    if (ctx.status === 404 && ctx.body == null && ctx.respond !== false) throw new NotFoundError(`no such endpoint: ${ctx.method} ${ctx.path}`);
  });
  if (gateway) {
    // The consent, connect and My connections pages wait on Temporal in the request: bounded, and a 503 when it is down.
    // A burst of them waits its turn in order (flowAdmission) rather than crowding Temporal until all time out.
    const bounded = temporalDeadline(gateway.temporal, config.temporal.requestTimeoutMs);
    const admitted = flowAdmission(config.temporal.flowRequests, Math.max(1, Math.ceil(config.temporal.requestTimeoutMs / 1000)));
    const waitsOnTemporal = (path: string) =>
      path.startsWith('/interaction/') || path.startsWith('/connections/') || path === '/connect' || path === '/oauth/upstream/callback' || path === idpCallbackPath;
    app.use(async function boundFlowRequests(ctx, next) {
      return waitsOnTemporal(ctx.path) ? admitted(ctx, () => bounded(ctx, next)) : next();
    });
  }
  for (const router of routers) {
    app.use(router.routes());
    app.use(router.allowedMethods({ throw: false }));
  }
  if (gateway && requireBearer && limits) {
    app.use(authorizationLimit(limits));
    const oauthCallback = gateway.oauth.provider.callback();
    app.use(async function oauthServer(ctx) {
      // Browser-based MCP clients register from another origin; the provider adds no CORS there.
      if (ctx.path === '/reg') {
        if (ctx.method === 'OPTIONS') {
          corsPreflight(ctx);
          return;
        }
        ctx.res.setHeader('Access-Control-Allow-Origin', '*');
      }
      // RFC 6749 §3.3: a request without `scope` gets the default scope, the one MCP scope; left
      // empty, the approved grant would cover nothing and the approved flow would end denied.
      if (ctx.path === '/auth' && ctx.method === 'GET' && !ctx.query['scope']) {
        const url = new URL(ctx.req.url ?? '/auth', 'http://gateway');
        url.searchParams.set('scope', mcpScope);
        ctx.req.url = `${url.pathname}${url.search}`;
      }
      // SEP-2207: `offline_access` asks for a refresh token. Every authorization here runs the
      // consent flow anyway; OpenID Connect keeps the scope only with prompt=consent, so it is implied.
      if (ctx.path === '/auth' && ctx.method === 'GET' && String(ctx.query['scope'] ?? '').split(' ').includes(offlineAccessScope) && !ctx.query['prompt']) {
        const url = new URL(ctx.req.url ?? '/auth', 'http://gateway');
        url.searchParams.set('prompt', 'consent');
        ctx.req.url = `${url.pathname}${url.search}`;
      }
      ctx.respond = false;
      await oauthCallback(ctx.req, ctx.res);
    });
  }
  return app;
}

/** Request headers a browser-based MCP client may send; `Mcp-Param-*` mirror tool arguments (SEP-2243). */
const corsRequestHeaders = ['authorization', 'dpop', 'content-type', 'accept', 'mcp-session-id', 'mcp-protocol-version', 'mcp-method', 'mcp-name', 'last-event-id'];

function corsPreflight(ctx: Koa.Context): void {
  ctx.status = 204;
  ctx.set('Access-Control-Allow-Origin', '*');
  ctx.set('Access-Control-Allow-Methods', 'GET, POST, DELETE, OPTIONS');
  const asked = ctx
    .get('access-control-request-headers')
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter((name) => /^mcp-param-[a-z0-9-]{1,64}$/.test(name));
  ctx.set('Access-Control-Allow-Headers', [...corsRequestHeaders, ...asked].join(', '));
  ctx.set('Access-Control-Max-Age', '600');
}

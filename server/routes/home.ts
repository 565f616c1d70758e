import Router from '@koa/router';
import type { GatewayConfig } from '../config.js';
import { escapeHtml } from '../html.js';

/** `GET /`: a short page naming the MCP endpoint and where operators look. */
export function homeRoutes(config: GatewayConfig, deps: { temporalUiUrl?: string | undefined }): Router {
  const router = new Router();
  router.get('/', function home(ctx) {
    const mcp = `${config.http.publicUrl}/mcp`;
    const ui = deps.temporalUiUrl
      ? `<p>Operators: every consent flow is a workflow in the <a href="${escapeHtml(deps.temporalUiUrl)}">Temporal Web UI</a>.</p>`
      : '';
    ctx.type = 'html';
    ctx.set('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'");
    ctx.body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Consent Gateway</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}code{background:#f3f3f3;padding:.1rem .3rem}</style></head>
<body><h1>Consent Gateway</h1>
<p>MCP endpoint: <code>${escapeHtml(mcp)}</code></p>
${ui}
<p>Your connected services and approved applications: <a href="/connections">My connections</a></p>
<p>Health: <a href="/healthz">/healthz</a></p>
</body></html>`;
  });
  return router;
}

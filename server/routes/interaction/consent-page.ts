import type Router from '@koa/router';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { chooseIdentity, consentWorkflowId, firstFlowChange } from '../../../workflows/consent-flow/messages.js';
import { InvalidClientError } from '../../errors.js';
import { escapeHtml } from '../../html.js';
import type { IdentityStep } from '../../identity/identity-step.js';
import { requireWithinLimits, TooManyRequestsError } from '../../limits/gateway-limits.js';
import { countFlowStarted } from '../../metrics.js';
import { renderErrorPage } from '../../oauth/error-page.js';
import { startConsentFlow } from '../../temporal/client.js';
import { csrfSubject, type InteractionAccess } from './access.js';
import type { InteractionRouteDeps } from './deps.js';
import { offeredAccess } from './finish.js';
import { currentState, recordFlowMove } from './flow.js';

/** The consent page's HTML: the consent app element for the flow, with its CSRF token. */
function consentPageHtml(uid: string, csrfToken: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Consent Gateway</title></head>
<body><cg-consent-app flow-id="${escapeHtml(uid)}" csrf-token="${escapeHtml(csrfToken)}" api-base="/interaction/${escapeHtml(uid)}"></cg-consent-app>
<script type="module" src="/assets/consent-app.js"></script></body></html>`;
}

/** The host the client's redirect URI points at (its scheme for a host-less one); `null` when it is no URL. */
function redirectHostOf(redirectUri: string): string | null {
  try {
    return new URL(redirectUri).host || new URL(redirectUri).protocol;
  } catch {
    return null;
  }
}

/**
 * `GET /interaction/:uid`, the consent page: only for the browser that holds the interaction
 * cookie; its first load binds the flow to that browser and starts the `consentFlow` workflow
 * (within the page's limits), later loads continue it. A browser already signed in continues as
 * its user.
 */
export function mountConsentPage(router: Router, deps: InteractionRouteDeps, access: InteractionAccess, identity: IdentityStep): void {
  const { config, oauth, temporal, binding: browser } = deps;
  const provider = oauth.provider;

  router.get('/', async function consentPage(ctx) {
    const uid = ctx.params.uid ?? '';
    const interaction = await access.loadInteraction(uid);
    ctx.set('Cache-Control', 'no-store');
    if (!interaction) {
      ctx.status = 410;
      ctx.type = 'html';
      ctx.body = renderErrorPage('expired', '', 'This sign-in request has expired');
      return;
    }
    const refuseOtherBrowser = () => {
      ctx.status = 403;
      ctx.type = 'html';
      ctx.body = renderErrorPage('session_not_found', '', 'This sign-in request belongs to another browser');
    };
    // No workflow starts for a request whose authorization this browser did not send.
    if (!(await access.heldByThisBrowser(ctx, uid))) return refuseOtherBrowser();
    const clientId = String(interaction.params.client_id ?? '');
    await requireWithinLimits(deps.limits.consentPage, ctx.ip, clientId, 'consent page loads');
    if ((await browser.check(ctx, uid)) === undefined) {
      // A flow's first load starts its workflow: the client's pending flows are capped here.
      const pending = await deps.limits.pendingFlows(clientId);
      if (!pending.allowed) throw new TooManyRequestsError(`too many sign-in requests of this application are pending; retry in ${pending.retryAfterSeconds} s`, pending.retryAfterSeconds);
    }
    const binding = await browser.bind(ctx, uid, interaction.exp * 1000 - Date.now());
    if (!binding) return refuseOtherBrowser();

    const client = await provider.Client.find(String(interaction.params.client_id));
    if (!client) throw new InvalidClientError('the client of this request no longer exists');
    const redirectHost = redirectHostOf(String(interaction.params.redirect_uri ?? ''));
    const ttlMs = Math.max(1_000, Math.min(config.flowTtlMs, interaction.exp * 1000 - Date.now() - 30_000));
    const flow = {
      flowId: uid,
      client: { clientId: client.clientId, clientName: client.clientName ?? null, redirectHost, registration: oauth.registrationOf(client) },
      ...(await offeredAccess(deps, interaction)),
      ttlMs,
    };
    const started = await startConsentFlow(temporal, config.temporal.taskQueue, flow).then(
      () => (countFlowStarted(), true),
      (error: unknown) => {
        if ((error as Error).name !== 'WorkflowExecutionAlreadyStartedError') throw error;
        return false;
      },
    );
    // The flow's first row in the read model (the flow records it again when it ends).
    if (started) await recordFlowMove(deps.store, firstFlowChange(flow, new Date()));
    if (config.identity.mode === 'header') await identity.adoptProxyIdentity(ctx, uid, await currentState(temporal, uid));

    // A browser that already signed in through an earlier flow continues as that user; behind a
    // trusted proxy the proxy's header decides every time instead.
    const sessionUser = interaction.session?.accountId;
    if (sessionUser && config.identity.mode !== 'header') {
      const state = await temporal.workflow
        .getHandle(consentWorkflowId(uid))
        .executeUpdate(chooseIdentity, { args: [{ userId: sessionUser, source: config.identity.mode }], updateId: `${uid}:identity` })
        .catch((error: unknown) => {
          if (!(error instanceof WorkflowUpdateFailedError)) throw error;
          return undefined;
        });
      await recordFlowMove(deps.store, state?.lastChange);
    }

    ctx.type = 'html';
    ctx.set('Content-Security-Policy', "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'");
    ctx.body = consentPageHtml(uid, browser.csrfToken(csrfSubject(uid, binding)));
  });
}

import Router from '@koa/router';
import { chooseIdentity } from '../../workflows/consent-flow/messages.js';
import { createIdentityStep } from '../identity/identity-step.js';
import { idpCallbackPath } from '../identity/oidc-login.js';
import { interactionAccess } from './interaction/access.js';
import { mountConsentPage } from './interaction/consent-page.js';
import type { InteractionRouteDeps } from './interaction/deps.js';
import { currentState, step } from './interaction/flow.js';
import { mountStepApi } from './interaction/step-api.js';

export type { InteractionRouteDeps } from './interaction/deps.js';

/**
 * The consent flow's browser side: `/interaction/:uid` starts (or resumes) the `consentFlow`
 * workflow for an authorization request and serves the consent screens; its JSON API moves the
 * workflow with updates. The flow is bound to the browser that opened it, every POST carries a
 * CSRF token, and the approve route finishes the OAuth interaction in the HTTP request, so the
 * authorization code never enters workflow history. In `oidc` identity mode it also serves the
 * IdP's redirect URI, {@link idpCallbackPath}. The upstream's redirect back is
 * `upstream-callback.ts`.
 */
export function interactionRoutes(deps: InteractionRouteDeps): Router {
  const { config, temporal, store, log } = deps;
  const access = interactionAccess(deps.oauth.provider, deps.binding);
  const router = new Router({ prefix: '/interaction/:uid' });
  const root = new Router();

  // Identity modes (DESIGN.md, decision 9) live in server/identity/; these routes only call into them.
  const identity = createIdentityStep({
    config,
    store,
    log,
    boundBrowser: access.boundBrowser,
    interactionAlive: async (uid) => (await access.loadInteraction(uid)) !== undefined,
    chooseIdentity: (uid, input) => step(deps, uid, (handle) => handle.executeUpdate(chooseIdentity, { args: [input], updateId: `${uid}:identity` })),
    currentState: (uid) => currentState(temporal, uid),
    cipher: deps.cipher,
  });
  if (identity.idpCallback) root.get(idpCallbackPath, identity.idpCallback);

  mountConsentPage(router, deps, access, identity);
  mountStepApi(router, deps, access, identity);

  root.use(router.routes());
  return root;
}

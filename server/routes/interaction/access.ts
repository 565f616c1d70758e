import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { Interaction } from 'oidc-provider';
import { AccessDeniedError, ExpiredError, type OAuthError } from '../../errors.js';
import type { BrowserBinding } from '../../middleware/browser-binding.js';

/** The CSRF subject of a flow's POSTs from the browser bound to it. */
export const csrfSubject = (uid: string, binding: string) => `csrf.${uid}.${binding}`;

/** Who may act on a consent flow's OAuth interaction: the interaction must be live and the request must come from the browser that holds it. */
export interface InteractionAccess {
  /** The interaction of `uid`; `undefined` when the uid is malformed or the interaction expired or never existed. */
  loadInteraction(uid: string): Promise<Interaction | undefined>;
  /** The browser's binding value for this flow, after checking it is the browser the flow is bound to. */
  boundBrowser(ctx: Context, uid: string): Promise<string>;
  /**
   * Whether the request carries the OAuth server's interaction cookie of this flow: only the browser
   * that sent the authorization request holds it, and only that browser can finish the flow, so a
   * step from any other browser is refused before the workflow hears of it.
   */
  heldByThisBrowser(ctx: Context, uid: string): Promise<boolean>;
  /** The live interaction of the route's `:uid`, held by this browser; else a 410 or 403 {@link OAuthError}. */
  requireInteraction(ctx: Context): Promise<Interaction>;
}

/** Builds the {@link InteractionAccess} checks on the OAuth server's interactions and the flows' browser binding. */
export function interactionAccess(provider: Provider, browser: BrowserBinding): InteractionAccess {
  async function loadInteraction(uid: string): Promise<Interaction | undefined> {
    if (!/^[A-Za-z0-9_-]{10,64}$/.test(uid)) return undefined;
    return provider.Interaction.find(uid);
  }

  async function heldByThisBrowser(ctx: Context, uid: string): Promise<boolean> {
    const held = await provider.interactionDetails(ctx.req, ctx.res).catch(() => undefined);
    return held?.uid === uid;
  }

  async function requireInteraction(ctx: Context): Promise<Interaction> {
    const uid = ctx.params.uid ?? '';
    const interaction = await loadInteraction(uid);
    if (!interaction) throw new ExpiredError('this sign-in request has expired or does not exist');
    if (!(await heldByThisBrowser(ctx, uid))) throw new AccessDeniedError('this sign-in request can only be finished in the browser that started it; start again from your application');
    return interaction;
  }

  return { loadInteraction, boundBrowser: (ctx, uid) => browser.require(ctx, uid), heldByThisBrowser, requireInteraction };
}

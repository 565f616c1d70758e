import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context } from 'koa';
import { AccessDeniedError } from '../errors.js';
import type { GatewayStore } from '../store/store.js';

/** What {@link createBrowserBinding} needs. */
export interface BrowserBindingOptions {
  /** The gateway's public URL: its origin is the only one POSTs may come from, `https:` makes cookies `__Host-` and secure. */
  publicUrl: string;
  /** The store's first-writer-wins binding of a flow to one browser. */
  store: Pick<GatewayStore, 'bindFlow'>;
  /** The cookie key ring: the first key signs CSRF tokens, every key verifies them. */
  cookieKeys: string[];
}

/**
 * Ties a flow (a consent flow, a connect) to the browser that opened it, and guards the POSTs of
 * the gateway's pages against cross-site requests.
 */
export interface BrowserBinding {
  /**
   * Binds the flow to this browser, setting its cookie (valid `maxAgeMs`) when the browser has none
   * yet. Answers the browser's binding value, or `undefined` when another browser owns the flow.
   */
  bind(ctx: Context, flowId: string, maxAgeMs: number): Promise<string | undefined>;
  /** This browser's binding value for a flow it is bound to; `undefined` when it is not the bound browser. */
  check(ctx: Context, flowId: string): Promise<string | undefined>;
  /** As {@link BrowserBinding.check}, but refuses any other browser with `403 access_denied`. */
  require(ctx: Context, flowId: string): Promise<string>;
  /** The CSRF token a page embeds for `subject` (what the token is bound to). */
  csrfToken(subject: string): string;
  /** Refuses a POST from another origin or without the CSRF token of `subject`, with `403 access_denied`. */
  checkPost(ctx: Context, subject: string): void;
}

/** Compares two strings in time independent of where they differ. */
export function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

const sha256 = (value: string) => createHash('sha256').update(value).digest('base64url');

/** Builds the gateway's {@link BrowserBinding} from its public URL, store and cookie keys. */
export function createBrowserBinding(options: BrowserBindingOptions): BrowserBinding {
  const secure = options.publicUrl.startsWith('https:');
  const origin = new URL(options.publicUrl).origin;
  const cookieName = (flowId: string) => `${secure ? '__Host-' : ''}cg_flow_${flowId.replace(/[^A-Za-z0-9_-]/g, '')}`;
  // Any key of the ring verifies, so a key rotation breaks no open page.
  const csrfTokens = (subject: string) => options.cookieKeys.map((key) => createHmac('sha256', key).update(subject).digest('base64url'));

  async function boundTo(flowId: string, binding: string): Promise<boolean> {
    const bound = await options.store.bindFlow(flowId, sha256(binding), new Date().toISOString());
    return sameText(bound, sha256(binding));
  }

  async function check(ctx: Context, flowId: string): Promise<string | undefined> {
    const binding = ctx.cookies.get(cookieName(flowId));
    return binding && (await boundTo(flowId, binding)) ? binding : undefined;
  }

  return {
    async bind(ctx, flowId, maxAgeMs) {
      const binding = ctx.cookies.get(cookieName(flowId)) ?? randomBytes(32).toString('base64url');
      if (!(await boundTo(flowId, binding))) return undefined;
      ctx.cookies.set(cookieName(flowId), binding, { httpOnly: true, sameSite: 'lax', secure, path: '/', maxAge: Math.max(0, maxAgeMs), overwrite: true });
      return binding;
    },
    check,
    async require(ctx, flowId) {
      const binding = await check(ctx, flowId);
      if (!binding) throw new AccessDeniedError('this sign-in request was started in another browser');
      return binding;
    },
    csrfToken: (subject) => csrfTokens(subject)[0] ?? '',
    checkPost(ctx, subject) {
      const sentOrigin = ctx.get('origin');
      if (sentOrigin && sentOrigin !== origin) throw new AccessDeniedError('cross-origin request refused');
      const token = ctx.get('x-csrf-token');
      if (!token || !csrfTokens(subject).some((expected) => sameText(token, expected))) throw new AccessDeniedError('missing or wrong CSRF token; reload the page');
    },
  };
}

import type { UpstreamAuthKind } from './kind.js';

/** An upstream that needs no user token: the gateway forwards calls without credentials. */
export interface UpstreamNoAuthConfig {
  type: 'none';
}

/** `auth: { type: none }` (or the older `auth: none`, or no `auth` at all). */
export const noAuth: UpstreamAuthKind<UpstreamNoAuthConfig> = {
  type: 'none',
  perUserConnection: false,
  parse: () => ({ type: 'none' }),
};

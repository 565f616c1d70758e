import type { ConfigReader, UpstreamAuthKind } from './kind.js';
import { enterpriseAuth, type UpstreamEnterpriseConfig } from './enterprise.js';
import { noAuth, type UpstreamNoAuthConfig } from './none.js';
import { oauthAuth, type UpstreamOAuthConfig } from './oauth.js';
import { tokenExchangeAuth, type UpstreamTokenExchangeConfig } from './token-exchange.js';

export type { ConfigReader, UpstreamAuthKind } from './kind.js';
export type { UpstreamNoAuthConfig } from './none.js';
export type { UpstreamClientConfig, UpstreamOAuthConfig } from './oauth.js';
export type { UpstreamClientCredentials } from './client-credentials.js';
export type { UpstreamTokenExchangeConfig } from './token-exchange.js';
export type { UpstreamEnterpriseConfig } from './enterprise.js';

/** How the gateway authenticates at an upstream: one member per kind, told apart by `type`. */
export type UpstreamAuthConfig = UpstreamNoAuthConfig | UpstreamOAuthConfig | UpstreamTokenExchangeConfig | UpstreamEnterpriseConfig;

/** Every kind, by its `type`. A new kind is a module beside these and one entry here. */
const kinds: { [Type in UpstreamAuthConfig['type']]: UpstreamAuthKind<Extract<UpstreamAuthConfig, { type: Type }>> } = {
  none: noAuth,
  oauth: oauthAuth,
  'token-exchange': tokenExchangeAuth,
  enterprise: enterpriseAuth,
};

const kindNames = Object.keys(kinds) as UpstreamAuthConfig['type'][];

/** Reads an upstream's `auth`: absent or `none` (the older spelling) is `{ type: 'none' }`; otherwise a mapping with a known `type`. */
export function parseUpstreamAuth(value: unknown, key: string, read: ConfigReader): UpstreamAuthConfig {
  if (value === undefined || value === null || value === 'none') return { type: 'none' };
  const entry = read.record(value, key);
  const type = read.oneOf(read.string(entry.type, `${key}.type`), kindNames, `${key}.type`);
  if (!type) throw read.error(`${key} must be a mapping with type: ${kindNames.join(' | ')}`);
  return kinds[type].parse(entry, key, read);
}

/** Whether each user must connect an account of their own at an upstream with this `auth` before using it. */
export function needsUserConnection(auth: UpstreamAuthConfig): boolean {
  return kinds[auth.type].perUserConnection;
}

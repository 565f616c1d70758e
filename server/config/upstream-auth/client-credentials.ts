import type { ConfigReader } from './kind.js';

/** The gateway's own client at an upstream's authorization server, registered there ahead. */
export interface UpstreamClientCredentials {
  clientId: string;
  /** Absent for a public client. */
  clientSecret?: string;
  authMethod: 'client_secret_basic' | 'client_secret_post' | 'none';
}

/** Reads `clientId` (required), `clientSecret` and `authMethod` of `auth` at config key `key`. */
export function parseClientCredentials(entry: Record<string, unknown>, key: string, read: ConfigReader): UpstreamClientCredentials {
  const clientId = read.string(entry.clientId, `${key}.clientId`);
  if (!clientId) throw read.error(`${key}.clientId is required: the gateway's client id at the authorization server`);
  const clientSecret = read.string(entry.clientSecret, `${key}.clientSecret`);
  const authMethod = read.oneOf(read.string(entry.authMethod, `${key}.authMethod`), ['client_secret_basic', 'client_secret_post', 'none'] as const, `${key}.authMethod`);
  if (authMethod && authMethod !== 'none' && !clientSecret) throw read.error(`${key}.authMethod ${authMethod} needs ${key}.clientSecret`);
  return { clientId, ...(clientSecret ? { clientSecret } : {}), authMethod: authMethod ?? (clientSecret ? 'client_secret_basic' : 'none') };
}

/** Reads a required URL setting; `asWritten` keeps it as written (an issuer identifier is compared exactly, RFC 8414 §3.3). */
export function requiredUrl(entry: Record<string, unknown>, name: string, key: string, read: ConfigReader, asWritten = false): string {
  const value = read.string(entry[name], `${key}.${name}`);
  if (!value) throw read.error(`${key}.${name} is required`);
  const url = read.url(value, `${key}.${name}`);
  return asWritten ? value : url;
}

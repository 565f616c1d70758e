import { needsUserConnection, type UpstreamConfig } from './config.js';
import type { UpstreamTokenRecord } from './store/store.js';
import type { UpstreamStatus } from './views/consent.js';

/** The user's standing with an upstream, as the consent screens and "My connections" show it. */
export function upstreamConnectionStatus(
  upstream: UpstreamConfig,
  tokens: UpstreamTokenRecord | undefined,
  nowSeconds = Math.floor(Date.now() / 1000),
): UpstreamStatus {
  if (!needsUserConnection(upstream.auth)) return 'ready';
  if (!tokens) return 'not_connected';
  if (tokens.status === 'needs_reconnect') return 'needs_reconnect';
  // Without a refresh token an expired access token cannot be renewed: the user must reconnect.
  if (tokens.expiresAt !== null && tokens.expiresAt <= nowSeconds && !tokens.refreshToken) return 'expired';
  return 'connected';
}

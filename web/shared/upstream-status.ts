import type { UpstreamStatus } from '../../server/views/consent.js';

/** What an upstream's status badge says, on the services step and on "My connections". */
export const upstreamStatusLabels: Record<UpstreamStatus, string> = {
  ready: 'ready',
  connected: 'connected',
  expired: 'expired',
  needs_reconnect: 'needs reconnect',
  not_connected: 'not connected',
};

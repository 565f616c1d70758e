import type { UpstreamConfig } from '../config.js';

/** An upstream whose `auth` is of the kind `Auth`. */
export type BrokeredUpstream<Auth> = Omit<UpstreamConfig, 'auth'> & { auth: Auth };

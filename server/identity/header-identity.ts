import type { IncomingMessage } from 'node:http';
import { trustedProxies } from '../config/trusted-proxies.js';
import { validUserId } from './user-id.js';

/**
 * What one request says about its user in `header` mode:
 * - `user`: a trusted proxy named the user;
 * - `absent`: no identity header;
 * - `untrusted`: the header came from a peer that is not a configured proxy, so it is ignored;
 * - `invalid`: a trusted proxy sent the header empty, repeated or with control characters.
 */
export type ProxyIdentity =
  | { kind: 'user'; userId: string }
  | { kind: 'absent' }
  | { kind: 'untrusted'; peer: string }
  | { kind: 'invalid'; reason: string };

/** `identity.header` of the configuration. */
export interface HeaderIdentitySettings {
  /** Lower-case header name, e.g. `x-forwarded-user`. */
  name: string;
  trustedProxies: string[];
}

/**
 * Reads the user a trusted reverse proxy put in a request header (DESIGN.md, decision 9). The
 * header counts only when the TCP peer itself is a configured proxy: `X-Forwarded-For` and the like
 * are ignored, since any client can send them.
 */
export function headerIdentity(settings: HeaderIdentitySettings): (req: IncomingMessage) => ProxyIdentity {
  const isTrusted = trustedProxies(settings.trustedProxies);
  return function readProxyIdentity(req) {
    const values = req.headersDistinct[settings.name];
    if (values === undefined) return { kind: 'absent' };
    const peer = req.socket.remoteAddress ?? '';
    if (!isTrusted(peer)) return { kind: 'untrusted', peer };
    // A proxy that appends instead of replacing would let the client's own value through.
    if (values.length !== 1) return { kind: 'invalid', reason: 'the header appears more than once' };
    const userId = validUserId(values[0]);
    if (userId === undefined) return { kind: 'invalid', reason: 'the header is empty, too long or has control characters' };
    return { kind: 'user', userId };
  };
}

import { createHmac, timingSafeEqual } from 'node:crypto';

import type { JsonRpcMessageShape } from '../http-headers.js';
import type { McpCaller } from '../types.js';

/** Marks request state the gateway issued itself (for its connect-link input requests). */
const stateMarker = 'consent-gateway.v1.';

/** Binds what the single-upstream endpoint hands a client to the user, client and upstream it was issued for. */
export interface PassthroughSigner {
  /** The upstream's 2025 session id with an HMAC over the caller and upstream, as the client sees it. */
  wrapSession(caller: McpCaller, upstream: string, sessionId: string): string;
  /** The upstream's session id in `wrapped`; `undefined` when it was altered or issued to someone else. */
  unwrapSession(caller: McpCaller, upstream: string, wrapped: string): string | undefined;
  /** The `requestState` of the gateway's own connect-link input request for `elicitationId`. */
  signState(caller: McpCaller, upstream: string, elicitationId: string): string;
  /** Whether `state` (see {@link gatewayRequestState}) was issued by {@link signState} for this caller and upstream. */
  verifyState(caller: McpCaller, upstream: string, state: string): boolean;
}

/**
 * Signs with the first of `sessionKeys` and verifies with any of them, so a key rotation ends no
 * session. Throws when there is no key.
 */
export function createPassthroughSigner(sessionKeys: readonly Buffer[]): PassthroughSigner {
  if (sessionKeys.length === 0) throw new TypeError('the passthrough endpoint needs at least one session key');
  const macWith = (key: Buffer, text: string) => createHmac('sha256', key).update(text).digest().subarray(0, 18).toString('base64url');
  /** The MAC of `text` under the signing key. */
  const sign = (text: string) => macWith(sessionKeys[0]!, text);
  /** Whether `given` is the MAC of `text` under any key of the ring. */
  const verify = (text: string, given: string) =>
    sessionKeys.some((key) => {
      const expected = Buffer.from(macWith(key, text));
      const offered = Buffer.from(given);
      return offered.length === expected.length && timingSafeEqual(offered, expected);
    });
  const sessionText = (caller: McpCaller, upstream: string, sessionId: string) => `${caller.userId}\n${caller.clientId}\n${upstream}\n${sessionId}`;
  const stateText = (caller: McpCaller, upstream: string, value: string) => `state\n${caller.userId}\n${caller.clientId}\n${upstream}\n${value}`;

  return {
    wrapSession: (caller, upstream, sessionId) => `${sessionId}.${sign(sessionText(caller, upstream, sessionId))}`,
    unwrapSession(caller, upstream, wrapped) {
      const dot = wrapped.lastIndexOf('.');
      if (dot <= 0) return undefined;
      const sessionId = wrapped.slice(0, dot);
      return verify(sessionText(caller, upstream, sessionId), wrapped.slice(dot + 1)) ? sessionId : undefined;
    },
    signState: (caller, upstream, elicitationId) => `${stateMarker}${elicitationId}.${sign(stateText(caller, upstream, elicitationId))}`,
    verifyState(caller, upstream, state) {
      const rest = state.slice(stateMarker.length);
      const dot = rest.lastIndexOf('.');
      if (dot <= 0) return false;
      return verify(stateText(caller, upstream, rest.slice(0, dot)), rest.slice(dot + 1));
    },
  };
}

/** The `requestState` of `message` when the gateway issued it itself (an answer to its connect link). */
export function gatewayRequestState(message: JsonRpcMessageShape): string | undefined {
  const state = message.params?.requestState;
  return typeof state === 'string' && state.startsWith(stateMarker) ? state : undefined;
}

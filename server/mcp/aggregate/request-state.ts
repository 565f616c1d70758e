import { encodeName } from './upstream-prefix.js';

/**
 * The `requestState` of an input-required result (MCP 2026-07-28 Basic/Patterns §Multi-round-trip
 * requests) as the aggregate endpoint hands it to its client: the upstream's own state behind a
 * prefix naming the upstream (`u.<upstream, percent-encoded>.<state byte for byte>`, or
 * `u.<upstream>` when the upstream sent input requests without state), or the
 * gateway's own state while it waits for the user to connect an upstream
 * (`c.<upstream, percent-encoded>`). Not signed: the upstream protects its own state, the
 * gateway's own state authorises nothing (the call is simply tried again), and the tool, prompt or
 * resource named in the retried request must belong to the same upstream.
 */
export type GatewayRequestState = { kind: 'upstream'; upstream: string; state: string | undefined } | { kind: 'connect'; upstream: string };

/** Wraps `state` of `upstream` for the client. */
export function wrapUpstreamState(upstream: string, state: string | undefined): string {
  return state === undefined ? `u.${encodeName(upstream)}` : `u.${encodeName(upstream)}.${state}`;
}

/** The gateway's own state for a call waiting on the user to connect `upstream`. */
export function connectState(upstream: string): string {
  return `c.${encodeName(upstream)}`;
}

/** Reads a state made by {@link wrapUpstreamState} or {@link connectState}; `undefined` for anything else. */
export function unwrapRequestState(wire: string): GatewayRequestState | undefined {
  const kind = wire.slice(0, 2);
  const rest = wire.slice(2);
  try {
    if (kind === 'c.') return rest.length > 0 ? { kind: 'connect', upstream: decodeURIComponent(rest) } : undefined;
    if (kind !== 'u.') return undefined;
    const dot = rest.indexOf('.');
    if (dot === 0 || rest.length === 0) return undefined;
    if (dot < 0) return { kind: 'upstream', upstream: decodeURIComponent(rest), state: undefined };
    return { kind: 'upstream', upstream: decodeURIComponent(rest.slice(0, dot)), state: rest.slice(dot + 1) };
  } catch {
    return undefined;
  }
}

/**
 * "My connections" JSON contract: what `GET /connections/api` and every successful POST answer. The
 * routes build these; `web/connections-page/` reads them with `import type`.
 */
import type { UpstreamStatus } from './consent.js';

/** One upstream as "My connections" lists it. */
export interface ConnectionUpstreamView {
  name: string;
  displayName: string;
  status: UpstreamStatus;
  /** The scopes granted at the upstream when connected, else the ones the gateway asks for. */
  scopes: string[];
  /** ISO 8601, or null when not connected. */
  connectedAt: string | null;
  /** ISO 8601, or null when never used. */
  lastUsedAt: string | null;
  authRequired: boolean;
}

/** One MCP client the user approved. */
export interface ConnectionClientView {
  clientId: string;
  clientName: string | null;
  upstreams: string[];
  scopes: string[];
  /** ISO 8601. */
  grantedAt: string;
}

/** What `GET {apiBase}` and every successful POST answer. */
export interface ConnectionsView {
  user: { id: string };
  upstreams: ConnectionUpstreamView[];
  clients: ConnectionClientView[];
  /** A message for the user about the action just taken. */
  notice: string | null;
  /** Where the browser goes next (a connect or reconnect continues at the upstream), when set. */
  redirectTo?: string | null;
}

/**
 * The consent screens' JSON contract: what `/interaction/:uid/state` and every successful step POST
 * answer. The routes build these; `web/consent-app/` reads them with `import type`, and the closed
 * lists it checks answers against as values (this file imports no value, so the browser bundles it).
 */
import type { ClientRegistration, ConsentStatus, ConsentStep, Decision, IdentitySource } from '../../workflows/consent-flow/steps.js';

/** Steps of a consent flow, in order. */
export type FlowStep = ConsentStep;

/** Where a flow stands; `approved`, `denied` and `expired` are final. */
export type FlowStatus = ConsentStatus;

/** How the gateway learns who the user is (DESIGN.md, decision 9). */
export type IdentityMode = IdentitySource;

/** How the MCP client came to be known to the gateway. */
export type { ClientRegistration };

/** The user's answer on the approve step. */
export type { Decision };

/** The user's standing with one upstream: `ready` needs no user authorization, `connected` has a usable grant. */
export const upstreamStatuses = ['ready', 'connected', 'expired', 'needs_reconnect', 'not_connected'] as const;
export type UpstreamStatus = (typeof upstreamStatuses)[number];

/** One upstream MCP server as the services and approve steps show it. */
export interface UpstreamView {
  name: string;
  displayName: string;
  status: UpstreamStatus;
  authRequired: boolean;
  scopes: string[];
}

/** The MCP client asking for access. */
export interface ClientView {
  clientId: string;
  clientName: string | null;
  redirectHost: string | null;
  registration: ClientRegistration;
}

/** A consent flow as `GET {apiBase}/state` and every successful POST return it. */
export interface FlowView {
  flowId: string;
  step: FlowStep;
  status: FlowStatus;
  identityMode: IdentityMode;
  user: { id: string } | null;
  client: ClientView;
  upstreams: UpstreamView[];
  chosenUpstreams: string[];
  scopes: string[];
  /** ISO 8601. */
  expiresAt: string;
  /** Set when the flow is done: the browser must go there. */
  redirectTo: string | null;
}

/** The answer of a step that continues somewhere else (the IdP, an upstream's authorization endpoint). */
export interface RedirectResult {
  redirectTo: string;
}

/** Body of every non-2xx answer. */
export interface ApiErrorBody {
  error: string;
  error_description: string;
}

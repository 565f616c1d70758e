import type { ConsentStore, FlowChange, FlowStore } from '../server/store/store.js';
import { createConsentActivities } from './consents.js';
import { createFlowActivities } from './flow-records.js';
import { createUpstreamOAuth, type UpstreamOAuthDeps } from './upstream-oauth.js';

/** What the activities need from the running gateway. */
export type ActivityDeps = UpstreamOAuthDeps & { store: FlowStore & ConsentStore };

/** Builds every activity the worker registers. Tests pass their own store. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createFlowActivities(deps),
    ...createConsentActivities(deps),
    ...createUpstreamOAuth(deps),
  };
}

/** The activity interface, as workflows see it through `proxyActivities`. */
export type Activities = ReturnType<typeof createActivities>;
export type { FlowChange };

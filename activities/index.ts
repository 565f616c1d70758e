import type { ConsentStore, FlowChange, FlowStore } from '../server/store/store.js';
import { createConsentActivities } from './consents.js';
import { createFlowActivities } from './flow-records.js';
import { createUpstreamOAuth, type UpstreamOAuthDeps } from './upstream-oauth/index.js';
import { withAudit, type ActivityObservers } from './audit.js';

/** What the activities need from the running gateway. */
export type ActivityDeps = UpstreamOAuthDeps & { store: FlowStore & ConsentStore; observers?: ActivityObservers };

/** Builds every activity the worker registers. Tests pass their own store. */
export function createActivities(deps: ActivityDeps) {
  const activities = {
    ...createFlowActivities(deps),
    ...createConsentActivities(deps),
    ...createUpstreamOAuth(deps),
  };
  return deps.observers ? withAudit(activities, deps.observers) : activities;
}

/** The activity interface, as workflows see it through `proxyActivities`. */
export type Activities = ReturnType<typeof createActivities>;
export type { FlowChange };

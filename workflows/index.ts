/** Workflow entry point for the worker's bundle: every workflow type the gateway runs. */
export { consentFlow } from './consent-flow.js';
export { upstreamGrant } from './upstream-grant.js';
export { upstreamConnect } from './upstream-connect.js';

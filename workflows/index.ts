/** Workflow entry point for the worker's bundle: every workflow type the gateway runs. */
export { consentFlow } from './consent-flow/workflow.js';
export { upstreamGrant } from './upstream-grant/workflow.js';
export { upstreamConnect } from './upstream-connect/workflow.js';

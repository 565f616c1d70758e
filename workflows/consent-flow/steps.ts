/**
 * The consent flow's steps: one table, in order, that the workflow (which step follows, which
 * status it records), the routes and the consent screens (title, element, "Step n of m") read, and
 * the closed lists a flow's state uses. It imports nothing, so the browser bundle takes it as it is.
 *
 * A new step is a row here, then its update and handler (`messages.ts`, `workflow.ts`, with
 * `patched()`), its POST (`server/routes/interaction/step-api.ts`) and its screen (`web/consent-app/`).
 */

/** Each step a flow waits at: its status while waiting there, its screen's title and element. */
export const consentStepTable = [
  { step: 'identity', status: 'identifying', title: 'Sign in', screen: 'cg-identity-step', waitingFor: 'the user to sign in' },
  { step: 'services', status: 'choosing_services', title: 'Choose services', screen: 'cg-services-step', waitingFor: 'the user to choose services' },
  { step: 'approve', status: 'awaiting_approval', title: 'Approve access', screen: 'cg-approve-step', waitingFor: 'the user to approve or deny' },
] as const;

/** One row of {@link consentStepTable}. */
export type ConsentStepRow = (typeof consentStepTable)[number];

/** Where every flow starts, and the status it is started with. */
export const firstStep: ConsentStepRow = consentStepTable[0];

/** A step the flow waits at for the user. */
export type OpenStep = ConsentStepRow['step'];

/** Where a flow stands: one of the table's steps, or `done`. */
export type ConsentStep = OpenStep | 'done';

/** The statuses a flow ends with; `done` carries one of these. */
export const finalStatuses = ['approved', 'denied', 'expired'] as const;

/** Flow status, as shown in the read model and the `ConsentFlowStatus` search attribute. */
export type ConsentStatus = ConsentStepRow['status'] | (typeof finalStatuses)[number];

/** Steps of a consent flow, in order, `done` last. */
export const consentSteps: readonly ConsentStep[] = [...consentStepTable.map((row) => row.step), 'done'];

/** The statuses of a flow still waiting for the user, in step order. */
export const openStatuses: readonly ConsentStatus[] = consentStepTable.map((row) => row.status);

/** Every flow status: the open ones in step order, then the final ones. */
export const consentStatuses: readonly ConsentStatus[] = [...openStatuses, ...finalStatuses];

/** The table's row of a step. */
export function stepRow(step: OpenStep): ConsentStepRow {
  const row = consentStepTable.find((candidate) => candidate.step === step);
  if (!row) throw new Error(`no consent step ${String(step)}`);
  return row;
}

/** The step after this one (`done` after the last). */
export function stepAfter(step: OpenStep): ConsentStep {
  const index = consentStepTable.findIndex((row) => row.step === step);
  return consentStepTable[index + 1]?.step ?? 'done';
}

/** "Step n of m" for a step the user is at. */
export function stepCounter(step: OpenStep): string {
  return `Step ${consentStepTable.findIndex((row) => row.step === step) + 1} of ${consentStepTable.length}`;
}

/** How the MCP client got its client id at the gateway (the approve step shows it). */
export const clientRegistrations = ['dcr', 'cimd', 'static'] as const;
export type ClientRegistration = (typeof clientRegistrations)[number];

/** How the user proved who they are at the identity step (DESIGN.md, decision 9). */
export const identitySources = ['dev', 'oidc', 'header'] as const;
export type IdentitySource = (typeof identitySources)[number];

/** The user's answer at the approve step. */
export const decisions = ['approve', 'deny'] as const;
export type Decision = (typeof decisions)[number];

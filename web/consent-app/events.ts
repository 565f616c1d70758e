import { composedEvent } from '../shared/events.js';
import type { Decision, FlowView } from './api.js';

/**
 * The `detail` of every event the consent screens dispatch, by event type. Step events bubble and
 * are composed, so they cross the step's shadow root and reach `<cg-consent-app>` (and the page).
 */
export interface ConsentEventDetails {
  /** The user asked to continue on the identity step; `userId` only in dev mode. */
  'identity-submit': { userId?: string };
  /** The user chose these upstreams on the services step. */
  'services-submit': { upstreams: string[] };
  /** The user asked to connect (or reconnect) one upstream. */
  'connect-upstream': { upstream: string };
  /** The user approved or denied on the approve step. */
  'consent-decision': { decision: Decision };
  /** The user pressed "Try again" after a failure. */
  'flow-retry': Record<string, never>;
  /** `<cg-consent-app>` has a new view of the flow. */
  'flow-change': { view: FlowView };
  /** `<cg-consent-app>` is about to leave the page; cancelable: `preventDefault()` keeps the page. */
  'consent-navigate': { url: string };
}

export type ConsentEventType = keyof ConsentEventDetails;

/** A typed consent-screen event. */
export type ConsentEvent<K extends ConsentEventType> = CustomEvent<ConsentEventDetails[K]>;

/** Builds a bubbling, composed consent-screen event. */
export function consentEvent<K extends ConsentEventType>(
  type: K,
  detail: ConsentEventDetails[K],
  options: { cancelable?: boolean } = {},
): ConsentEvent<K> {
  return composedEvent(type, detail, options);
}

declare global {
  interface HTMLElementEventMap {
    'identity-submit': ConsentEvent<'identity-submit'>;
    'services-submit': ConsentEvent<'services-submit'>;
    'connect-upstream': ConsentEvent<'connect-upstream'>;
    'consent-decision': ConsentEvent<'consent-decision'>;
    'flow-retry': ConsentEvent<'flow-retry'>;
    'flow-change': ConsentEvent<'flow-change'>;
    'consent-navigate': ConsentEvent<'consent-navigate'>;
  }
}

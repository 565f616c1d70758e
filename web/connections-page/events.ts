import { composedEvent } from '../shared/events.js';

/** What the user asked for on "My connections". */
export const CONNECTION_ACTIONS = ['revoke', 'connect', 'disconnect', 'reconnect'] as const;
export type ConnectionAction = (typeof CONNECTION_ACTIONS)[number];

/** The `detail` of `connection-action`: the action, and the client id or upstream name it is about. */
export interface ConnectionActionDetail {
  action: ConnectionAction;
  target: string;
}

/** A confirmed action from a list; bubbles and is composed, so it reaches `<cg-connections-page>`. */
export type ConnectionActionEvent = CustomEvent<ConnectionActionDetail>;

/** Builds a `connection-action` event. */
export function connectionAction(detail: ConnectionActionDetail): ConnectionActionEvent {
  return composedEvent('connection-action', detail);
}

declare global {
  interface HTMLElementEventMap {
    'connection-action': ConnectionActionEvent;
  }
}

/**
 * Builds an event that bubbles and is composed, so it leaves the shadow root of the element that
 * dispatches it and reaches the page's shell element (and the page). Each page types its own.
 */
export function composedEvent<T>(type: string, detail: T, options: { cancelable?: boolean } = {}): CustomEvent<T> {
  return new CustomEvent(type, { detail, bubbles: true, composed: true, cancelable: options.cancelable ?? false });
}

import { LitElement, css, html, nothing, type PropertyValues } from 'lit';

import { consentEvent } from './events.js';
import { icon, type IconName } from '../shared/icons.js';
import { sharedStyles } from '../shared/styles.js';

/** The kinds of message screen, each with its own icon and tone. */
export const MESSAGE_KINDS = ['pending', 'redirect', 'done', 'refused', 'expired', 'error'] as const;
export type MessageKind = (typeof MESSAGE_KINDS)[number];

/** What the expired screen says. */
export const EXPIRED_MESSAGE = 'This sign-in request has expired. Go back to your application and try again.';

/** `null`: a spinner. */
const ICONS: Record<MessageKind, IconName | null> = {
  pending: null,
  redirect: null,
  done: 'check',
  refused: 'cross',
  expired: 'clock',
  error: 'alert',
};

/**
 * A screen with a heading and a message: loading, redirecting, done, denied, expired or failed.
 * `pending` and `redirect` show a spinner and are announced politely; `error` and `expired` are
 * announced as alerts. With `retryable`, a "Try again" button asks the shell to repeat what failed.
 *
 * @element cg-flow-message
 * @attr kind - `pending` | `redirect` | `done` | `refused` | `expired` | `error` (property `kind`)
 * @attr heading - the `<h1>` text; defaults to "Request expired" for `expired` (property `heading`)
 * @attr message - the main sentence; defaults to the expired sentence for `expired` (property `message`)
 * @attr detail - a secondary line, e.g. the server's error description (property `detail`)
 * @attr retryable - shows "Try again" (property `retryable`)
 * @attr pending - set while the retry is in flight: the button is disabled (property `pending`)
 * @fires flow-retry - "Try again" was pressed. Bubbles, composed.
 * @csspart icon - the round icon (or spinner)
 * @csspart heading - the `<h1>`
 * @csspart message - the main sentence
 * @csspart detail - the secondary line
 * @csspart retry - the "Try again" button
 */
export class FlowMessage extends LitElement {
  static override properties = {
    kind: { type: String, reflect: true },
    heading: { type: String },
    message: { type: String },
    detail: { type: String },
    retryable: { type: Boolean },
    pending: { type: Boolean, reflect: true },
  };

  static override styles = [
    sharedStyles,
    css`
      :host {
        text-align: center;
      }

      .icon {
        display: grid;
        place-items: center;
        width: 3rem;
        height: 3rem;
        margin: 0.25rem auto 1rem;
        border-radius: 50%;
        background: var(--cg-subtle);
        color: var(--cg-muted);
      }

      :host([kind='done']) .icon {
        background: var(--cg-ok-bg);
        color: var(--cg-ok);
      }

      :host([kind='expired']) .icon {
        background: var(--cg-warning-bg);
        color: var(--cg-warning);
      }

      :host([kind='error']) .icon,
      :host([kind='refused']) .icon {
        background: var(--cg-danger-bg);
        color: var(--cg-danger);
      }

      .spinner {
        width: 2rem;
        height: 2rem;
        margin: 0.75rem auto 1.25rem;
        border-radius: 50%;
        border: 3px solid var(--cg-border);
        border-top-color: var(--cg-accent);
        animation: spin 0.9s linear infinite;
      }

      @keyframes spin {
        to {
          transform: rotate(360deg);
        }
      }

      .detail {
        font-size: 0.875rem;
        overflow-wrap: anywhere;
      }

      .actions {
        justify-content: center;
      }

      .actions button {
        flex: 0 1 12rem;
      }
    `,
  ];

  declare kind: MessageKind;
  declare heading: string;
  declare message: string;
  declare detail: string;
  declare retryable: boolean;
  declare pending: boolean;

  constructor() {
    super();
    this.kind = 'pending';
    this.heading = '';
    this.message = '';
    this.detail = '';
    this.retryable = false;
    this.pending = false;
  }

  protected override firstUpdated(changed: PropertyValues<this>): void {
    super.firstUpdated(changed);
    this.renderRoot.querySelector<HTMLElement>('h1')?.focus();
  }

  protected override render() {
    const iconName = ICONS[this.kind] ?? null;
    const alert = this.kind === 'error' || this.kind === 'expired';
    const heading = this.heading || (this.kind === 'expired' ? 'Request expired' : '');
    const message = this.message || (this.kind === 'expired' ? EXPIRED_MESSAGE : '');
    return html`
      ${iconName === null
        ? html`<div class="spinner" part="icon" aria-hidden="true"></div>`
        : html`<div class="icon" part="icon">${icon(iconName)}</div>`}
      <h1 part="heading" tabindex="-1">${heading}</h1>
      <div role=${alert ? 'alert' : 'status'}>
        ${message ? html`<p part="message">${message}</p>` : nothing}
        ${this.detail ? html`<p class="detail muted" part="detail">${this.detail}</p>` : nothing}
      </div>
      ${this.retryable
        ? html`<div class="actions">
            <button class="primary" part="retry" type="button" ?disabled=${this.pending} @click=${this.retry}>
              Try again
            </button>
          </div>`
        : nothing}
    `;
  }

  private retry(): void {
    if (this.pending) return;
    this.dispatchEvent(consentEvent('flow-retry', {}));
  }
}

if (!customElements.get('cg-flow-message')) customElements.define('cg-flow-message', FlowMessage);

declare global {
  interface HTMLElementTagNameMap {
    'cg-flow-message': FlowMessage;
  }
}

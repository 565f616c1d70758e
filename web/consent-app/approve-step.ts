import { LitElement, css, html, nothing, type PropertyValues } from 'lit';

import type { ClientRegistration, ClientView, Decision, UpstreamView } from './api.js';
import { consentEvent } from './events.js';
import { sharedStyles } from '../shared/styles.js';

/** How the approve step says the MCP client came to be known. */
export const REGISTRATION_LABELS: Record<ClientRegistration, string> = {
  dcr: 'registered itself (dynamic registration)',
  cimd: 'identified by its metadata document',
  static: 'pre-registered by your administrator',
};

/** "A", "A and B", "A, B, and C". */
export function joinNames(names: readonly string[]): string {
  return new Intl.ListFormat('en', { style: 'long', type: 'conjunction' }).format(names);
}

/** The name to show for a client: its registered name, else its id. */
export function clientLabel(client: ClientView): string {
  return client.clientName?.trim() || client.clientId;
}

/**
 * The approve step: the question the user answers, with who asks (client name, redirect host, how
 * it registered, client id), for which upstreams and scopes, on behalf of whom — the facts MCP's
 * security best practices require against a confused deputy.
 *
 * @element cg-approve-step
 * @attr user - the signed-in user's id (property `user`)
 * @attr pending - set while a request is in flight: buttons are disabled (property `pending`)
 * @prop client - `ClientView`
 * @prop upstreams - `UpstreamView[]`: the chosen upstreams
 * @prop scopes - `string[]`: the scopes the client requested from the gateway
 * @fires consent-decision - `{ decision: 'approve' | 'deny' }`. Bubbles, composed.
 * @csspart heading - the step's `<h1>`
 * @csspart question - the "Allow … ?" sentence
 * @csspart details - the client and scope details
 * @csspart approve - the "Approve" button
 * @csspart deny - the "Deny" button
 */
export class ApproveStep extends LitElement {
  static override properties = {
    client: { attribute: false },
    upstreams: { attribute: false },
    scopes: { attribute: false },
    user: { type: String },
    pending: { type: Boolean, reflect: true },
  };

  static override styles = [
    sharedStyles,
    css`
      .question {
        font-size: 1.0625rem;
      }

      dl {
        display: grid;
        grid-template-columns: minmax(7rem, max-content) 1fr;
        gap: 0.5rem 1rem;
        margin: 0;
        padding: 1rem;
        background: var(--cg-subtle);
        border: 1px solid var(--cg-border);
        border-radius: var(--cg-radius-small);
        font-size: 0.9375rem;
      }

      dt {
        color: var(--cg-muted);
      }

      dd {
        margin: 0;
        min-width: 0;
      }

      .scopes {
        display: flex;
        flex-wrap: wrap;
        gap: 0.375rem;
        margin: 0;
        padding: 0;
        list-style: none;
      }

      .caution {
        margin: 1rem 0 0;
        font-size: 0.875rem;
      }

      @media (max-width: 30rem) {
        dl {
          grid-template-columns: 1fr;
          gap: 0.125rem;
        }

        dd + dt {
          margin-top: 0.5rem;
        }
      }
    `,
  ];

  declare client: ClientView;
  declare upstreams: UpstreamView[];
  declare scopes: string[];
  declare user: string;
  declare pending: boolean;

  constructor() {
    super();
    this.client = { clientId: '', clientName: null, redirectHost: null, registration: 'dcr' };
    this.upstreams = [];
    this.scopes = [];
    this.user = '';
    this.pending = false;
  }

  protected override firstUpdated(changed: PropertyValues<this>): void {
    super.firstUpdated(changed);
    this.renderRoot.querySelector<HTMLElement>('h1')?.focus();
  }

  protected override render() {
    const name = clientLabel(this.client);
    const services = joinNames(this.upstreams.map((upstream) => upstream.displayName));
    return html`
      <h1 part="heading" tabindex="-1">Approve access</h1>
      <p class="question" part="question">
        Allow <strong>${name}</strong>${this.client.redirectHost ? ` (${this.client.redirectHost})` : nothing} to use
        <strong>${services || 'no services'}</strong> as <strong>${this.user}</strong>?
      </p>
      <dl part="details">
        <dt>Client</dt>
        <dd>${REGISTRATION_LABELS[this.client.registration]}</dd>
        <dt>Client ID</dt>
        <dd><code>${this.client.clientId}</code></dd>
        <dt>Scopes requested</dt>
        <dd>${this.renderScopes(this.scopes)}</dd>
        ${this.upstreams.map(
          (upstream) => html`
            <dt>${upstream.displayName} scopes</dt>
            <dd>${this.renderScopes(upstream.scopes)}</dd>
          `,
        )}
      </dl>
      <p class="caution muted">Only approve if you started this sign-in from ${name} yourself.</p>
      <div class="actions">
        <button part="deny" type="button" ?disabled=${this.pending} @click=${() => this.decide('deny')}>Deny</button>
        <button class="primary" part="approve" type="button" ?disabled=${this.pending} @click=${() => this.decide('approve')}>
          Approve
        </button>
      </div>
    `;
  }

  private renderScopes(scopes: readonly string[]) {
    if (scopes.length === 0) return html`<span class="muted">none</span>`;
    return html`<ul class="scopes">
      ${scopes.map((scope) => html`<li><code>${scope}</code></li>`)}
    </ul>`;
  }

  private decide(decision: Decision): void {
    if (this.pending) return;
    this.dispatchEvent(consentEvent('consent-decision', { decision }));
  }
}

if (!customElements.get('cg-approve-step')) customElements.define('cg-approve-step', ApproveStep);

declare global {
  interface HTMLElementTagNameMap {
    'cg-approve-step': ApproveStep;
  }
}

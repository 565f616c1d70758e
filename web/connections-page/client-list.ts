import { LitElement, html, nothing } from 'lit';

import { sharedStyles } from '../shared/styles.js';
import type { ConnectionClientView, ConnectionUpstreamView } from './api.js';
import { connectionAction } from './events.js';
import { confirmPanel, listStyles, timeOf, wordList } from './list-parts.js';

/** How an approved client is named: its registered name, else its client id. */
export function clientDisplayName(client: ConnectionClientView): string {
  return client.clientName?.trim() || client.clientId;
}

/**
 * The "Applications" section: each MCP client the user approved, with the services and scopes it
 * may use, when it was approved, and a "Revoke …" button that asks for confirmation inline.
 *
 * @element cg-client-list
 * @prop clients - `ConnectionClientView[]`
 * @prop upstreams - `ConnectionUpstreamView[]`, to show services by their display names
 * @attr pending - set while a request is in flight: buttons are disabled (property `pending`)
 * @fires connection-action - `{ action: 'revoke', target: <client id> }`, once confirmed. Bubbles, composed.
 * @csspart row - one client
 */
export class ClientList extends LitElement {
  static override properties = {
    clients: { attribute: false },
    upstreams: { attribute: false },
    pending: { type: Boolean, reflect: true },
    confirming: { state: true },
  };

  static override styles = [sharedStyles, listStyles];

  declare clients: ConnectionClientView[];
  declare upstreams: ConnectionUpstreamView[];
  declare pending: boolean;
  declare private confirming: string | null;

  constructor() {
    super();
    this.clients = [];
    this.upstreams = [];
    this.pending = false;
    this.confirming = null;
  }

  protected override render() {
    return html`
      <h2 id="clients-heading">Applications</h2>
      ${this.clients.length === 0
        ? html`<p class="empty">You have not approved any application.</p>`
        : html`<ul class="rows" aria-labelledby="clients-heading">
            ${this.clients.map((client) => this.renderClient(client))}
          </ul>`}
    `;
  }

  private renderClient(client: ConnectionClientView) {
    const name = clientDisplayName(client);
    const services = client.upstreams.map((upstream) => this.upstreams.find((known) => known.name === upstream)?.displayName ?? upstream);
    const confirming = this.confirming === client.clientId;
    return html`
      <li class="row" part="row">
        <div class="details">
          <div class="title"><span>${name}</span></div>
          <dl>
            <dt>Services</dt>
            <dd>${services.length ? wordList(services) : 'none'}</dd>
            <dt>Scopes</dt>
            <dd>${client.scopes.length ? wordList(client.scopes) : 'none'}</dd>
            <dt>Approved</dt>
            <dd>${timeOf(client.grantedAt, 'unknown')}</dd>
          </dl>
        </div>
        <div class="row-actions">
          <button class="small" type="button" ?disabled=${this.pending || confirming} @click=${() => (this.confirming = client.clientId)}>
            Revoke ${name}
          </button>
        </div>
        ${confirming
          ? confirmPanel({
              message: `Revoke ${name}? Its access stops at once; it has to ask you again to use your services.`,
              buttonText: 'Yes, revoke',
              label: `Confirm revoke ${name}`,
              pending: this.pending,
              onConfirm: () => this.confirm(client.clientId),
              onCancel: () => (this.confirming = null),
            })
          : nothing}
      </li>
    `;
  }

  private confirm(clientId: string): void {
    if (this.pending) return;
    this.confirming = null;
    this.dispatchEvent(connectionAction({ action: 'revoke', target: clientId }));
  }
}

if (!customElements.get('cg-client-list')) customElements.define('cg-client-list', ClientList);

declare global {
  interface HTMLElementTagNameMap {
    'cg-client-list': ClientList;
  }
}

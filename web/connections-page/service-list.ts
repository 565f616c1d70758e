import { LitElement, html, nothing } from 'lit';

import { sharedStyles } from '../shared/styles.js';
import { upstreamStatusLabels } from '../shared/upstream-status.js';
import type { ConnectionUpstreamView } from './api.js';
import { connectionAction, type ConnectionAction } from './events.js';
import { confirmPanel, listStyles, timeOf, wordList } from './list-parts.js';

/** What a service's buttons do; `connect` goes straight to the upstream, the others ask first. */
export type UpstreamAction = Extract<ConnectionAction, 'connect' | 'reconnect' | 'disconnect'>;

/** The actions an upstream offers, in button order. */
export function upstreamActions(upstream: ConnectionUpstreamView): UpstreamAction[] {
  if (!upstream.authRequired) return [];
  if (upstream.status === 'connected' || upstream.status === 'expired' || upstream.status === 'needs_reconnect') return ['reconnect', 'disconnect'];
  return ['connect'];
}

const buttonText: Record<UpstreamAction, string> = { connect: 'Connect', reconnect: 'Reconnect', disconnect: 'Disconnect' };

const confirmText: Record<'reconnect' | 'disconnect', (name: string) => string> = {
  disconnect: (name) => `Disconnect ${name}? The gateway forgets your ${name} tokens, and no application can use ${name} until you connect it again.`,
  reconnect: (name) => `Reconnect ${name}? You sign in at ${name} again; the current connection stays until the new one replaces it.`,
};

/**
 * The "Services" section: each upstream with its status badge, scopes, connected-since and
 * last-used; "Connect …" for one not connected, and "Reconnect …"/"Disconnect …", which ask for
 * confirmation inline, for one that is.
 *
 * @element cg-service-list
 * @prop upstreams - `ConnectionUpstreamView[]`, in display order
 * @attr pending - set while a request is in flight: buttons are disabled (property `pending`)
 * @fires connection-action - `{ action: 'connect' | 'reconnect' | 'disconnect', target: <upstream name> }`, at once for connect, else once confirmed. Bubbles, composed.
 * @csspart row - one upstream
 * @csspart badge - its status badge
 */
export class ServiceList extends LitElement {
  static override properties = {
    upstreams: { attribute: false },
    pending: { type: Boolean, reflect: true },
    confirming: { state: true },
  };

  static override styles = [sharedStyles, listStyles];

  declare upstreams: ConnectionUpstreamView[];
  declare pending: boolean;
  declare private confirming: { action: 'reconnect' | 'disconnect'; name: string } | null;

  constructor() {
    super();
    this.upstreams = [];
    this.pending = false;
    this.confirming = null;
  }

  protected override render() {
    return html`
      <h2 id="services-heading">Services</h2>
      ${this.upstreams.length === 0
        ? html`<p class="empty">No services are set up on this gateway.</p>`
        : html`<ul class="rows" aria-labelledby="services-heading">
            ${this.upstreams.map((upstream) => this.renderUpstream(upstream))}
          </ul>`}
    `;
  }

  private renderUpstream(upstream: ConnectionUpstreamView) {
    const confirming = this.confirming?.name === upstream.name ? this.confirming.action : null;
    const connected = upstream.connectedAt !== null;
    const actions = upstreamActions(upstream);
    return html`
      <li class="row" part="row">
        <div class="details">
          <div class="title">
            <span>${upstream.displayName}</span>
            <span class="badge ${upstream.status}" part="badge">${upstreamStatusLabels[upstream.status]}</span>
          </div>
          <dl>
            ${upstream.authRequired
              ? html`<dt>Scopes</dt>
                  <dd>${upstream.scopes.length ? wordList(upstream.scopes) : 'none'}</dd>`
              : html`<dt>Access</dt>
                  <dd>needs no sign-in</dd>`}
            ${connected
              ? html`<dt>Connected</dt>
                  <dd>${timeOf(upstream.connectedAt, 'unknown')}</dd>
                  <dt>Last used</dt>
                  <dd>${timeOf(upstream.lastUsedAt, 'never')}</dd>`
              : nothing}
          </dl>
        </div>
        ${actions.length
          ? html`<div class="row-actions">${actions.map((action) => this.renderButton(action, upstream, confirming !== null))}</div>`
          : nothing}
        ${confirming
          ? confirmPanel({
              message: confirmText[confirming](upstream.displayName),
              buttonText: confirming === 'reconnect' ? 'Yes, reconnect' : 'Yes, disconnect',
              label: `Confirm ${confirming} ${upstream.displayName}`,
              pending: this.pending,
              onConfirm: () => this.act(confirming, upstream.name),
              onCancel: () => (this.confirming = null),
            })
          : nothing}
      </li>
    `;
  }

  private renderButton(action: UpstreamAction, upstream: ConnectionUpstreamView, confirming: boolean) {
    const click = () => (action === 'connect' ? this.act(action, upstream.name) : (this.confirming = { action, name: upstream.name }));
    return html`<button class="small ${action === 'connect' ? 'primary' : ''}" type="button" ?disabled=${this.pending || confirming} @click=${click}>
      ${buttonText[action]} ${upstream.displayName}
    </button>`;
  }

  private act(action: UpstreamAction, name: string): void {
    if (this.pending) return;
    this.confirming = null;
    this.dispatchEvent(connectionAction({ action, target: name }));
  }
}

if (!customElements.get('cg-service-list')) customElements.define('cg-service-list', ServiceList);

declare global {
  interface HTMLElementTagNameMap {
    'cg-service-list': ServiceList;
  }
}

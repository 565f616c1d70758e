import { LitElement, css, html, nothing, type PropertyValues } from 'lit';

import type { UpstreamView } from './api.js';
import { consentEvent } from './events.js';
import { sharedStyles } from '../shared/styles.js';
import { upstreamStatusLabels } from '../shared/upstream-status.js';

/** Whether the user can choose this upstream now (and it is chosen by default). */
export function isSelectable(upstream: UpstreamView): boolean {
  return upstream.status === 'ready' || upstream.status === 'connected';
}

/** "Connect …" for a user who never connected, "Reconnect …" for an expired or revoked grant, or none. */
export function connectAction(upstream: UpstreamView): 'Connect' | 'Reconnect' | null {
  if (!upstream.authRequired) return null;
  if (upstream.status === 'not_connected') return 'Connect';
  if (upstream.status === 'expired' || upstream.status === 'needs_reconnect') return 'Reconnect';
  return null;
}

/**
 * The services step: which upstreams the MCP client may use. Upstreams that are ready or connected
 * are checked by default; the others are disabled until the user connects them.
 *
 * @element cg-services-step
 * @attr user - the signed-in user's id (property `user`)
 * @attr pending - set while a request is in flight: controls are disabled (property `pending`)
 * @prop upstreams - `UpstreamView[]`, in display order
 * @fires services-submit - `{ upstreams: string[] }`: the chosen upstream names, in display order. Bubbles, composed.
 * @fires connect-upstream - `{ upstream: string }`: "Connect …"/"Reconnect …" was pressed. Bubbles, composed.
 * @csspart heading - the step's `<h1>`
 * @csspart list - the list of upstreams
 * @csspart upstream - one upstream's row
 * @csspart badge - an upstream's status badge
 * @csspart connect - a "Connect …"/"Reconnect …" button
 * @csspart continue - the "Continue" button
 */
export class ServicesStep extends LitElement {
  static override properties = {
    upstreams: { attribute: false },
    user: { type: String },
    pending: { type: Boolean, reflect: true },
    selected: { state: true },
  };

  static override styles = [
    sharedStyles,
    css`
      .upstreams {
        list-style: none;
        margin: 0;
        padding: 0;
        border: 1px solid var(--cg-border);
        border-radius: var(--cg-radius-small);
      }

      .upstream {
        display: grid;
        grid-template-columns: auto minmax(0, 1fr) auto;
        align-items: center;
        gap: 0.5rem 0.75rem;
        padding: 0.75rem 1rem;
      }

      .upstream + .upstream {
        border-top: 1px solid var(--cg-border);
      }

      .info {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 0.25rem 0.625rem;
        min-width: 0;
      }

      .info label {
        cursor: pointer;
        overflow-wrap: anywhere;
      }

      input:disabled + .info label {
        cursor: default;
        color: var(--cg-muted);
      }

      @media (max-width: 30rem) {
        .upstream {
          grid-template-columns: auto minmax(0, 1fr);
        }

        .upstream button {
          grid-column: 2;
          justify-self: start;
        }
      }

      .hint {
        margin: 0.75rem 0 0;
        font-size: 0.875rem;
      }
    `,
  ];

  declare upstreams: UpstreamView[];
  declare user: string;
  declare pending: boolean;
  declare private selected: ReadonlySet<string>;
  /** Names that were selectable in the previous `upstreams`, so a refresh keeps the user's choices. */
  private known: ReadonlySet<string>;

  constructor() {
    super();
    this.upstreams = [];
    this.user = '';
    this.pending = false;
    this.selected = new Set();
    this.known = new Set();
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    if (!changed.has('upstreams')) return;
    const selectable = this.upstreams.filter(isSelectable).map((upstream) => upstream.name);
    this.selected = new Set(selectable.filter((name) => !this.known.has(name) || this.selected.has(name)));
    this.known = new Set(selectable);
  }

  protected override firstUpdated(changed: PropertyValues<this>): void {
    super.firstUpdated(changed);
    this.renderRoot.querySelector<HTMLElement>('h1')?.focus();
  }

  protected override render() {
    const chosen = this.chosen();
    const anyToConnect = this.upstreams.some((upstream) => connectAction(upstream) !== null);
    return html`
      <h1 part="heading" tabindex="-1">Choose services</h1>
      <p class="muted">Signed in as <strong>${this.user}</strong></p>
      ${this.upstreams.length === 0
        ? html`<p>No services are set up on this gateway yet.</p>`
        : html`
            <p>
              Choose the services to share.${anyToConnect
                ? ' Services that need your permission can be chosen once they are connected.'
                : nothing}
            </p>
            <ul class="upstreams" part="list">
              ${this.upstreams.map((upstream, index) => this.renderUpstream(upstream, index))}
            </ul>
          `}
      <p class="hint muted" id="continue-hint" ?hidden=${chosen.length > 0 || this.upstreams.length === 0}>
        Choose at least one service to continue.
      </p>
      <div class="actions">
        <button
          class="primary"
          part="continue"
          type="button"
          aria-describedby="continue-hint"
          ?disabled=${this.pending || chosen.length === 0}
          @click=${this.onContinue}
        >
          Continue
        </button>
      </div>
    `;
  }

  private renderUpstream(upstream: UpstreamView, index: number) {
    const id = `upstream-${index}`;
    const action = connectAction(upstream);
    const selectable = isSelectable(upstream);
    return html`
      <li class="upstream" part="upstream">
        <input
          id=${id}
          type="checkbox"
          .checked=${selectable && this.selected.has(upstream.name)}
          ?disabled=${!selectable || this.pending}
          aria-describedby=${`${id}-status`}
          @change=${(event: Event) => this.toggle(upstream.name, (event.target as HTMLInputElement).checked)}
        />
        <span class="info">
          <label for=${id}>${upstream.displayName}</label>
          <span class="badge ${upstream.status}" part="badge" id=${`${id}-status`}>
            ${upstreamStatusLabels[upstream.status]}
          </span>
        </span>
        ${action === null
          ? nothing
          : html`
              <button
                class="small"
                part="connect"
                type="button"
                ?disabled=${this.pending}
                @click=${() => this.connect(upstream.name)}
              >
                ${action} ${upstream.displayName}
              </button>
            `}
      </li>
    `;
  }

  private chosen(): string[] {
    return this.upstreams
      .filter((upstream) => isSelectable(upstream) && this.selected.has(upstream.name))
      .map((upstream) => upstream.name);
  }

  private toggle(name: string, checked: boolean): void {
    const next = new Set(this.selected);
    if (checked) next.add(name);
    else next.delete(name);
    this.selected = next;
  }

  private connect(upstream: string): void {
    if (this.pending) return;
    this.dispatchEvent(consentEvent('connect-upstream', { upstream }));
  }

  private onContinue(): void {
    const upstreams = this.chosen();
    if (this.pending || upstreams.length === 0) return;
    this.dispatchEvent(consentEvent('services-submit', { upstreams }));
  }
}

if (!customElements.get('cg-services-step')) customElements.define('cg-services-step', ServicesStep);

declare global {
  interface HTMLElementTagNameMap {
    'cg-services-step': ServicesStep;
  }
}

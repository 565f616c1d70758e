import { LitElement, css, html, nothing } from 'lit';

import { icon } from '../shared/icons.js';
import { documentStyles, pageShellStyles, sharedStyles, themeStyles } from '../shared/styles.js';
import { ApiError, NETWORK_ERROR } from '../shared/json-api.js';
import { ConnectionsApi, type ConnectionsView } from './api.js';
import type { ConnectionActionEvent } from './events.js';
import './client-list.js';
import './service-list.js';

/** A failed call: what to say, and whether "Try again" can repeat it. */
interface Failure {
  message: string;
  retry: (() => Promise<void>) | null;
}

/**
 * "My connections": the signed-in user's services (upstream connections) and approved
 * applications (MCP clients). Loads `{api-base}`, sends the lists' actions to the JSON API and
 * renders the answer, with a notice confirming what was done. Pending calls disable the buttons;
 * failures are shown above the lists, with "Try again" for network and server errors; a lost
 * session (401) shows the sign-in message.
 *
 * @element cg-connections-page
 * @attr csrf-token - sent as `X-CSRF-Token` on every POST (property `csrfToken`)
 * @attr api-base - the JSON API's base path, e.g. `/connections/api` (property `apiBase`)
 * @attr signed-out - the browser has no gateway session: show how to sign in, call nothing (property `signedOut`)
 * @listens connection-action - from `<cg-service-list>` and `<cg-client-list>`
 * @csspart header - the "Consent Gateway" header
 * @csspart card - the card holding the page
 * @csspart notice - the notice about the last action
 * @csspart error - the error notice
 */
export class ConnectionsPage extends LitElement {
  static override properties = {
    csrfToken: { type: String, attribute: 'csrf-token' },
    apiBase: { type: String, attribute: 'api-base' },
    signedOut: { type: Boolean, attribute: 'signed-out', reflect: true },
    view: { state: true },
    pending: { state: true },
    failure: { state: true },
    notice: { state: true },
  };

  static override styles = [
    themeStyles,
    sharedStyles,
    pageShellStyles,
    css`
      .card {
        max-width: 44rem;
      }

      .notice {
        flex-wrap: wrap;
        align-items: center;
      }

      .notice p {
        flex: 1 1 14rem;
        margin: 0;
      }

      .notice.info {
        background: var(--cg-info-bg);
        border-color: var(--cg-info);
        color: var(--cg-info);
      }
    `,
  ];

  declare csrfToken: string;
  declare apiBase: string;
  declare signedOut: boolean;
  declare private view: ConnectionsView | null;
  declare private pending: boolean;
  declare private failure: Failure | null;
  declare private notice: string | null;

  constructor() {
    super();
    this.csrfToken = '';
    this.apiBase = '/connections/api';
    this.signedOut = false;
    this.view = null;
    this.pending = false;
    this.failure = null;
    this.notice = null;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    adoptDocumentStyles();
    this.addEventListener('connection-action', this.onAction);
    if (!this.signedOut && !this.view) void this.run(() => this.api().load());
  }

  override disconnectedCallback(): void {
    this.removeEventListener('connection-action', this.onAction);
    super.disconnectedCallback();
  }

  protected override render() {
    return html`
      <div class="page">
        <header part="header">
          <span class="logo">${icon('shield', 20)}</span>
          <span>Consent Gateway</span>
        </header>
        <main class="card" part="card" aria-busy=${this.pending ? 'true' : 'false'}>${this.renderBody()}</main>
      </div>
    `;
  }

  private renderBody() {
    if (this.signedOut) {
      return html`
        <h1>Sign in first</h1>
        <p>You are not signed in to this gateway in this browser.</p>
        <p class="muted">
          Connect your MCP client to the gateway and sign in when it asks you to; then open this page again to see
          your connections.
        </p>
      `;
    }
    const view = this.view;
    return html`
      <h1>My connections</h1>
      ${view ? html`<p class="muted">Signed in as <strong>${view.user.id}</strong></p>` : nothing}
      ${this.notice
        ? html`<div class="notice info" part="notice" role="status">
            <span class="notice-icon">${icon('check', 18)}</span>
            <p>${this.notice}</p>
          </div>`
        : nothing}
      ${this.failure
        ? html`<div class="notice error" part="error" role="alert">
            <span class="notice-icon">${icon('alert', 18)}</span>
            <p>${this.failure.message}</p>
            ${this.failure.retry
              ? html`<button class="small" type="button" ?disabled=${this.pending} @click=${this.onRetry}>Try again</button>`
              : nothing}
          </div>`
        : nothing}
      ${view
        ? html`
            <cg-service-list .upstreams=${view.upstreams} ?pending=${this.pending}></cg-service-list>
            <cg-client-list .clients=${view.clients} .upstreams=${view.upstreams} ?pending=${this.pending}></cg-client-list>
          `
        : this.failure
          ? nothing
          : html`<p class="muted" role="status">Loading your connections…</p>`}
    `;
  }

  private api(): ConnectionsApi {
    return new ConnectionsApi({ apiBase: this.apiBase, csrfToken: this.csrfToken });
  }

  private readonly onAction = (event: ConnectionActionEvent): void => {
    const { action, target } = event.detail;
    if (this.pending) return;
    const api = this.api();
    const calls = {
      revoke: () => api.revokeClient(target),
      connect: () => api.connect(target),
      disconnect: () => api.disconnect(target),
      reconnect: () => api.reconnect(target),
    } satisfies Record<typeof action, () => Promise<ConnectionsView>>;
    void this.run(calls[action]);
  };

  private readonly onRetry = (): void => {
    const retry = this.failure?.retry;
    if (retry && !this.pending) void retry();
  };

  /** Runs one API call and renders its answer or its failure; never throws. */
  private async run(call: () => Promise<ConnectionsView>): Promise<void> {
    this.pending = true;
    try {
      const view = await call();
      // Only the gateway's own connect link: a connect or reconnect continues at the upstream from there.
      if (view.redirectTo && view.redirectTo.startsWith('/connect?')) {
        window.location.assign(view.redirectTo);
        return;
      }
      this.view = view;
      this.notice = view.notice;
      this.failure = null;
    } catch (error) {
      this.notice = null;
      this.failure = this.describe(error, () => this.run(call));
    } finally {
      this.pending = false;
    }
  }

  private describe(error: unknown, retry: () => Promise<void>): Failure | null {
    if (!(error instanceof ApiError)) return { message: 'Something went wrong.', retry };
    if (error.status === 401) {
      this.signedOut = true;
      return null;
    }
    if (error.error === NETWORK_ERROR) return { message: 'The gateway could not be reached.', retry };
    if (error.status >= 500) return { message: 'The gateway could not do that right now.', retry };
    if (error.status === 403) return { message: 'This page is out of date. Reload it and try again.', retry: null };
    return { message: error.description || 'The gateway refused that request.', retry: null };
  }
}

/** The server's page has no stylesheet; the element styles the document around it. */
function adoptDocumentStyles(): void {
  const sheet = documentStyles.styleSheet;
  if (sheet && !document.adoptedStyleSheets.includes(sheet)) document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
}

if (!customElements.get('cg-connections-page')) customElements.define('cg-connections-page', ConnectionsPage);

declare global {
  interface HTMLElementTagNameMap {
    'cg-connections-page': ConnectionsPage;
  }
}

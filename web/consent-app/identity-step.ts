import { LitElement, css, html, type PropertyValues } from 'lit';

import type { IdentityMode } from './api.js';
import { consentEvent } from './events.js';
import { icon } from '../shared/icons.js';
import { sharedStyles } from '../shared/styles.js';

/**
 * The identity step: who is signing in.
 *
 * - `dev`: a warning banner, a "User name" field and "Continue" (also on Enter).
 * - `oidc`: "Continue" to the organisation's identity provider.
 * - `header`: nothing to do; the gateway learns the user from its trusted proxy, so it waits.
 *
 * @element cg-identity-step
 * @attr mode - `dev` | `oidc` | `header` (property `mode`)
 * @attr pending - set while a request is in flight: controls are disabled (property `pending`)
 * @fires identity-submit - `{ userId?: string }`: `userId` (trimmed) in dev mode, absent in oidc mode. Bubbles, composed.
 * @csspart heading - the step's `<h1>`
 * @csspart banner - the development-mode warning
 * @csspart input - the "User name" field
 * @csspart continue - the "Continue" button
 */
export class IdentityStep extends LitElement {
  static override properties = {
    mode: { type: String },
    pending: { type: Boolean, reflect: true },
    userName: { state: true },
  };

  static override styles = [
    sharedStyles,
    css`
      form {
        margin: 0;
      }

      .status {
        display: flex;
        gap: 0.75rem;
        align-items: center;
      }

      .spinner {
        flex: none;
        width: 1.25rem;
        height: 1.25rem;
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
    `,
  ];

  declare mode: IdentityMode;
  declare pending: boolean;
  declare private userName: string;

  constructor() {
    super();
    this.mode = 'dev';
    this.pending = false;
    this.userName = '';
  }

  protected override firstUpdated(changed: PropertyValues<this>): void {
    super.firstUpdated(changed);
    const target = this.renderRoot.querySelector<HTMLElement>(this.mode === 'dev' ? 'input' : 'h1');
    target?.focus();
  }

  protected override render() {
    return html`
      <h1 part="heading" tabindex="-1">Sign in</h1>
      ${this.mode === 'dev' ? this.renderDev() : this.mode === 'oidc' ? this.renderOidc() : this.renderHeader()}
    `;
  }

  private renderDev() {
    const empty = this.userName.trim() === '';
    return html`
      <p class="notice warning" part="banner">
        <span class="notice-icon">${icon('alert', 20)}</span>
        <span>Development sign-in: anyone can sign in as anyone. Not for production.</span>
      </p>
      <form @submit=${this.onSubmitDev} novalidate>
        <label for="user-name">User name</label>
        <input
          id="user-name"
          part="input"
          type="text"
          name="userName"
          autocomplete="username"
          autocapitalize="none"
          spellcheck="false"
          autofocus
          required
          .value=${this.userName}
          ?readonly=${this.pending}
          @input=${this.onInput}
        />
        <div class="actions">
          <button class="primary" part="continue" type="submit" ?disabled=${this.pending || empty}>Continue</button>
        </div>
      </form>
    `;
  }

  private renderOidc() {
    return html`
      <p>Sign in with your organisation's account</p>
      <div class="actions">
        <button class="primary" part="continue" type="button" ?disabled=${this.pending} @click=${this.onContinueOidc}>
          Continue
        </button>
      </div>
    `;
  }

  private renderHeader() {
    return html`
      <p class="status" role="status">
        <span class="spinner" aria-hidden="true"></span>
        <span>Waiting for your organisation's sign-in…</span>
      </p>
    `;
  }

  private onInput(event: InputEvent): void {
    this.userName = (event.target as HTMLInputElement).value;
  }

  private onSubmitDev(event: SubmitEvent): void {
    event.preventDefault();
    const userId = this.userName.trim();
    if (this.pending || userId === '') return;
    this.dispatchEvent(consentEvent('identity-submit', { userId }));
  }

  private onContinueOidc(): void {
    if (this.pending) return;
    this.dispatchEvent(consentEvent('identity-submit', {}));
  }
}

if (!customElements.get('cg-identity-step')) customElements.define('cg-identity-step', IdentityStep);

declare global {
  interface HTMLElementTagNameMap {
    'cg-identity-step': IdentityStep;
  }
}

import { css } from 'lit';

/**
 * Design tokens, set on `<cg-consent-app>` and inherited by every step inside it. A page may override
 * any `--cg-*` property on `cg-consent-app`.
 */
export const themeStyles = css`
  :host {
    --cg-font: system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif;
    --cg-mono: ui-monospace, SFMono-Regular, Menlo, Consolas, 'Liberation Mono', monospace;
    --cg-page: #f3f4f7;
    --cg-surface: #ffffff;
    --cg-text: #1d2330;
    --cg-muted: #5b6475;
    --cg-border: #d7dbe3;
    --cg-subtle: #f6f7f9;
    --cg-accent: #2456d3;
    --cg-accent-hover: #1b45ad;
    --cg-on-accent: #ffffff;
    --cg-focus: #2456d3;
    --cg-danger: #b42318;
    --cg-danger-bg: #fdecea;
    --cg-warning: #8a5a00;
    --cg-warning-bg: #fff6dc;
    --cg-warning-border: #e0a800;
    --cg-ok: #176639;
    --cg-ok-bg: #e4f5ea;
    --cg-info: #1f4fa3;
    --cg-info-bg: #e6eefc;
    --cg-radius: 12px;
    --cg-radius-small: 8px;
    --cg-shadow: 0 1px 2px rgb(16 24 40 / 6%), 0 8px 24px rgb(16 24 40 / 8%);
    color-scheme: light dark;
  }

  @media (prefers-color-scheme: dark) {
    :host {
      --cg-page: #12151b;
      --cg-surface: #1b1f27;
      --cg-text: #e8ebf1;
      --cg-muted: #a3abba;
      --cg-border: #343b48;
      --cg-subtle: #232833;
      --cg-accent: #5b8cff;
      --cg-accent-hover: #7aa2ff;
      --cg-on-accent: #0b1020;
      --cg-focus: #8fb0ff;
      --cg-danger: #ff9b8f;
      --cg-danger-bg: #3a1f1d;
      --cg-warning: #ffd27a;
      --cg-warning-bg: #3a2f12;
      --cg-warning-border: #c99a2e;
      --cg-ok: #8fdcab;
      --cg-ok-bg: #173524;
      --cg-info: #a9c3ff;
      --cg-info-bg: #1d2a45;
      --cg-shadow: 0 1px 2px rgb(0 0 0 / 30%), 0 8px 24px rgb(0 0 0 / 35%);
    }
  }
`;

/** Type, headings, buttons, form controls, badges and notices shared by every step. */
export const sharedStyles = css`
  :host {
    display: block;
    font-family: var(--cg-font);
    color: var(--cg-text);
    line-height: 1.5;
  }

  [hidden] {
    display: none !important;
  }

  h1,
  h2 {
    margin: 0 0 0.75rem;
    font-size: 1.375rem;
    line-height: 1.3;
    font-weight: 650;
    letter-spacing: -0.01em;
  }

  /* Headings take focus only so a screen change is announced; they are not controls. */
  h1:focus,
  h2:focus {
    outline: none;
  }

  p {
    margin: 0 0 1rem;
  }

  .muted {
    color: var(--cg-muted);
  }

  code {
    font-family: var(--cg-mono);
    font-size: 0.875em;
    background: var(--cg-subtle);
    border: 1px solid var(--cg-border);
    border-radius: 4px;
    padding: 0.05rem 0.3rem;
    overflow-wrap: anywhere;
    -webkit-box-decoration-break: clone;
    box-decoration-break: clone;
  }

  .actions {
    display: flex;
    flex-wrap: wrap;
    gap: 0.75rem;
    margin-top: 1.5rem;
  }

  button {
    font: inherit;
    font-weight: 600;
    min-height: 2.75rem;
    padding: 0.5rem 1.25rem;
    border-radius: var(--cg-radius-small);
    border: 1px solid var(--cg-border);
    background: var(--cg-surface);
    color: var(--cg-text);
    cursor: pointer;
    transition:
      background-color 120ms ease,
      border-color 120ms ease;
  }

  button:hover:not(:disabled) {
    background: var(--cg-subtle);
  }

  button.primary {
    background: var(--cg-accent);
    border-color: var(--cg-accent);
    color: var(--cg-on-accent);
  }

  button.primary:hover:not(:disabled) {
    background: var(--cg-accent-hover);
    border-color: var(--cg-accent-hover);
  }

  button.small {
    min-height: 2.25rem;
    padding: 0.25rem 0.875rem;
    font-size: 0.875rem;
  }

  button:disabled {
    cursor: not-allowed;
    opacity: 0.55;
  }

  button:focus-visible,
  input:focus-visible {
    outline: 3px solid var(--cg-focus);
    outline-offset: 2px;
  }

  .actions button {
    flex: 1 1 8rem;
  }

  label {
    font-weight: 600;
  }

  input[type='text'] {
    box-sizing: border-box;
    width: 100%;
    font: inherit;
    color: inherit;
    background: var(--cg-surface);
    min-height: 2.75rem;
    padding: 0.5rem 0.75rem;
    margin-top: 0.375rem;
    border: 1px solid var(--cg-border);
    border-radius: var(--cg-radius-small);
  }

  input[type='checkbox'] {
    width: 1.125rem;
    height: 1.125rem;
    margin: 0;
    accent-color: var(--cg-accent);
  }

  .notice {
    display: flex;
    gap: 0.625rem;
    align-items: flex-start;
    margin: 0 0 1.25rem;
    padding: 0.75rem 1rem;
    border-radius: var(--cg-radius-small);
    border: 1px solid transparent;
    border-left-width: 4px;
    font-size: 0.9375rem;
  }

  .notice.warning {
    background: var(--cg-warning-bg);
    border-color: var(--cg-warning-border);
    color: var(--cg-warning);
  }

  .notice.error {
    background: var(--cg-danger-bg);
    border-color: var(--cg-danger);
    color: var(--cg-danger);
  }

  .notice-icon {
    flex: none;
    display: flex;
    margin-top: 0.0625rem;
  }

  .badge {
    display: inline-block;
    padding: 0.0625rem 0.5rem;
    border-radius: 999px;
    font-size: 0.75rem;
    font-weight: 600;
    line-height: 1.4rem;
    white-space: nowrap;
    background: var(--cg-subtle);
    color: var(--cg-muted);
    border: 1px solid var(--cg-border);
  }

  .badge.ready {
    background: var(--cg-info-bg);
    color: var(--cg-info);
    border-color: transparent;
  }

  .badge.connected {
    background: var(--cg-ok-bg);
    color: var(--cg-ok);
    border-color: transparent;
  }

  .badge.expired,
  .badge.needs_reconnect {
    background: var(--cg-warning-bg);
    color: var(--cg-warning);
    border-color: transparent;
  }

  .visually-hidden {
    position: absolute !important;
    width: 1px;
    height: 1px;
    margin: -1px;
    padding: 0;
    overflow: hidden;
    clip: rect(0 0 0 0);
    white-space: nowrap;
    border: 0;
  }

  @media (prefers-reduced-motion: reduce) {
    * {
      transition: none !important;
      animation: none !important;
    }
  }
`;

/**
 * Styles for the document around `<cg-consent-app>`, adopted by the element: the server's page carries
 * no stylesheet of its own, so the body's default margin and colour would frame the app.
 */
export const documentStyles = css`
  html,
  body {
    margin: 0;
    min-height: 100%;
    background: #f3f4f7;
  }

  @media (prefers-color-scheme: dark) {
    html,
    body {
      background: #12151b;
    }
  }
`;

/**
 * The full-page shell both pages share: background, centred column, its header with the logo
 * badge, the card (34rem wide; a page's own styles may widen it), narrower padding on small screens.
 */
export const pageShellStyles = css`
  :host {
    min-height: 100vh;
    min-height: 100dvh;
    background: var(--cg-page);
  }

  .page {
    box-sizing: border-box;
    display: flex;
    flex-direction: column;
    align-items: center;
    min-height: 100vh;
    min-height: 100dvh;
    padding: clamp(1rem, 6vh, 4rem) 1rem 2rem;
  }

  header {
    display: flex;
    align-items: center;
    gap: 0.5rem;
    margin-bottom: 1.25rem;
    font-weight: 650;
    letter-spacing: 0.01em;
  }

  .card {
    box-sizing: border-box;
    width: 100%;
    max-width: 34rem;
    padding: 2rem;
    background: var(--cg-surface);
    border: 1px solid var(--cg-border);
    border-radius: var(--cg-radius);
    box-shadow: var(--cg-shadow);
  }

  .logo {
    display: grid;
    place-items: center;
    width: 1.75rem;
    height: 1.75rem;
    border-radius: 0.5rem;
    background: var(--cg-accent);
    color: var(--cg-on-accent);
  }

  @media (max-width: 30rem) {
    .page {
      padding: 1rem 0.75rem 1.5rem;
    }

    .card {
      padding: 1.25rem;
    }
  }
`;

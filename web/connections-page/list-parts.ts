import { css, html, type TemplateResult } from 'lit';

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** An ISO 8601 time as a `<time>` in the reader's locale; `fallback` when absent or unreadable. */
export function timeOf(iso: string | null, fallback: string): TemplateResult {
  const date = iso ? new Date(iso) : null;
  if (!date || Number.isNaN(date.getTime())) return html`${fallback}`;
  return html`<time datetime=${iso}>${dateFormat.format(date)}</time>`;
}

/**
 * Items joined by commas, each kept whole on its line ("profile:read", a service name): a line
 * breaks between items, and inside one only when it is wider than the whole column.
 */
export function wordList(items: readonly string[]): TemplateResult {
  return html`${items.map((item, i) => html`${i > 0 ? ', ' : ''}<span class="word">${item}</span>`)}`;
}

/**
 * Rows of a list of services or applications, each with details and its actions. The details
 * keep at least 16rem: the actions stack beside them, or move below when the row is narrower.
 */
export const listStyles = css`
  h2 {
    font-size: 1.125rem;
    margin-top: 1.75rem;
  }

  ul.rows {
    list-style: none;
    margin: 0;
    padding: 0;
    border: 1px solid var(--cg-border);
    border-radius: var(--cg-radius-small);
  }

  .row {
    display: flex;
    flex-wrap: wrap;
    gap: 0.75rem 1rem;
    align-items: flex-start;
    padding: 0.875rem 1rem;
  }

  .details {
    flex: 1 1 16rem;
    min-width: 0;
  }

  .row + .row {
    border-top: 1px solid var(--cg-border);
  }

  .title {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    gap: 0.25rem 0.625rem;
    font-weight: 600;
    overflow-wrap: anywhere;
  }

  dl {
    display: grid;
    grid-template-columns: auto minmax(0, 1fr);
    gap: 0.125rem 0.75rem;
    margin: 0.375rem 0 0;
    font-size: 0.875rem;
  }

  dt {
    color: var(--cg-muted);
  }

  dd {
    margin: 0;
    overflow-wrap: break-word;
  }

  /* A box of its own: the line breaks between items; only an item wider than the column breaks. */
  .word {
    display: inline-block;
    max-width: 100%;
    overflow-wrap: anywhere;
  }

  time {
    white-space: nowrap;
  }

  .row-actions {
    flex: 0 0 auto;
    display: flex;
    flex-direction: column;
    align-items: stretch;
    gap: 0.5rem;
  }

  .confirm {
    flex: 1 0 100%;
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    gap: 0.5rem 0.75rem;
    padding: 0.625rem 0.75rem;
    border-radius: var(--cg-radius-small);
    background: var(--cg-danger-bg);
    color: var(--cg-danger);
    font-size: 0.9375rem;
  }

  .confirm p {
    flex: 1 1 12rem;
    margin: 0;
  }

  button.danger {
    background: var(--cg-danger);
    border-color: var(--cg-danger);
    color: var(--cg-surface);
  }

  button.danger:hover:not(:disabled) {
    background: var(--cg-danger);
    opacity: 0.9;
  }

  .empty {
    margin: 0;
    padding: 0.875rem 1rem;
    border: 1px dashed var(--cg-border);
    border-radius: var(--cg-radius-small);
    color: var(--cg-muted);
  }

  @media (max-width: 36rem) {
    .row-actions {
      flex: 1 1 100%;
      flex-direction: row;
      flex-wrap: wrap;
    }
  }
`;

/** The inline confirmation of a destructive action: a message, "<confirm label>" and "Cancel". */
export function confirmPanel(options: {
  message: string;
  buttonText: string;
  /** The confirm button's accessible name, e.g. "Confirm revoke Claude". */
  label: string;
  pending: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}): TemplateResult {
  return html`
    <div class="confirm">
      <p>${options.message}</p>
      <button class="small danger" type="button" aria-label=${options.label} ?disabled=${options.pending} @click=${options.onConfirm}>
        ${options.buttonText}
      </button>
      <button class="small" type="button" ?disabled=${options.pending} @click=${options.onCancel}>Cancel</button>
    </div>
  `;
}

import { escapeHtml } from './html.js';

/** What a server-rendered message page says. */
export interface MessagePage {
  /** The `<h1>`, and the document title before " · Consent Gateway". */
  title: string;
  /** Plain-text paragraphs. */
  sentences: string[];
  /** An error code the user can quote, shown small under the sentences. */
  errorCode?: string;
  /** Where the user goes next, e.g. "Try again" or "Back to My connections". */
  link?: { href: string; text: string };
}

// The look of the Lit screens (web/shared/styles.ts), in plain CSS: these pages load no script.
const styles = `
:root{color-scheme:light dark;--page:#f3f4f7;--surface:#fff;--text:#1d2330;--muted:#5b6475;--border:#d7dbe3;--accent:#2456d3;--on-accent:#fff;--shadow:0 1px 2px rgb(16 24 40/6%),0 8px 24px rgb(16 24 40/8%)}
@media (prefers-color-scheme:dark){:root{--page:#12151b;--surface:#1b1f27;--text:#e8ebf1;--muted:#a3abba;--border:#343b48;--accent:#5b8cff;--on-accent:#0b1020;--shadow:0 1px 2px rgb(0 0 0/30%),0 8px 24px rgb(0 0 0/35%)}}
html,body{margin:0;min-height:100%;background:var(--page)}
body{font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;color:var(--text)}
.page{box-sizing:border-box;display:flex;flex-direction:column;align-items:center;min-height:100vh;padding:clamp(1rem,6vh,4rem) 1rem 2rem}
header{display:flex;align-items:center;gap:.5rem;margin-bottom:1.25rem;font-weight:650;letter-spacing:.01em}
.logo{display:grid;place-items:center;width:1.75rem;height:1.75rem;border-radius:.5rem;background:var(--accent);color:var(--on-accent)}
main{box-sizing:border-box;width:100%;max-width:34rem;padding:2rem;background:var(--surface);border:1px solid var(--border);border-radius:12px;box-shadow:var(--shadow);overflow-wrap:break-word}
h1{margin:0 0 .75rem;font-size:1.375rem;line-height:1.3;font-weight:650;letter-spacing:-.01em}
p{margin:0 0 1rem}main>:last-child{margin-bottom:0}.muted{color:var(--muted);font-size:.875rem}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.875em}
a.next{display:inline-block;margin-top:.5rem;padding:.5rem 1.25rem;border-radius:8px;background:var(--accent);color:var(--on-accent);font-weight:600;text-decoration:none}
a.next:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
@media (max-width:30rem){.page{padding:1rem .75rem 1.5rem}main{padding:1.25rem}}`;

const shield =
  '<svg viewBox="0 0 24 24" width="20" height="20" fill="none" stroke="currentColor" stroke-width="2.25" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">' +
  '<path d="M12 3l7 3v5c0 4.5-3 8.3-7 10-4-1.7-7-5.5-7-10V6z"/><path d="M9 12l2 2 4-4"/></svg>';

/**
 * A page with the gateway's header, a heading and a few sentences, for the screens the server
 * renders itself (a connect link, an upstream's callback). Every text is escaped here.
 */
export function renderMessage(page: MessagePage): string {
  const paragraphs = page.sentences.map((sentence) => `<p>${escapeHtml(sentence)}</p>`);
  if (page.errorCode) paragraphs.push(`<p class="muted">Error: <code>${escapeHtml(page.errorCode)}</code></p>`);
  if (page.link) paragraphs.push(`<p><a class="next" href="${escapeHtml(page.link.href)}">${escapeHtml(page.link.text)}</a></p>`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(page.title)} · Consent Gateway</title>
<style>${styles}</style></head>
<body><div class="page">
<header><span class="logo">${shield}</span><span>Consent Gateway</span></header>
<main><h1>${escapeHtml(page.title)}</h1>
${paragraphs.join('\n')}</main></div></body></html>`;
}

import { escapeHtml } from '../html.js';

const hints: Record<string, string> = {
  invalid_request: 'The application sent a request the gateway cannot accept.',
  invalid_client: 'The application is not known to the gateway, or could not prove who it is.',
  invalid_redirect_uri: 'The application asked to return to an address it did not register.',
  access_denied: 'Access was refused.',
  expired: 'This sign-in request has expired. Go back to your application and try again.',
  session_not_found: 'This sign-in request belongs to another browser, or its cookie is gone. Start again from your application.',
};

/** A page with a heading and a few sentences, in the same look as the error pages. */
export function renderMessagePage(title: string, sentences: string[]): string {
  return pageShell(title, sentences.map((sentence) => `<p>${escapeHtml(sentence)}</p>`).join('\n'));
}

/** A readable error page for the browser (never a stack trace). */
export function renderErrorPage(error: string, description: string, title = 'Something went wrong'): string {
  return pageShell(
    title,
    `<p>${escapeHtml(hints[error] ?? 'The request could not be completed.')}</p>
${description ? `<p>${escapeHtml(description)}</p>` : ''}
<p><small>Error: <code>${escapeHtml(error)}</code></small></p>`,
  );
}

function pageShell(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · Consent Gateway</title>
<style>body{font:16px/1.5 system-ui,sans-serif;background:#f5f6f8;color:#1d2330;margin:0}
main{max-width:32rem;margin:4rem auto;background:#fff;border-radius:12px;padding:2rem;box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{font-size:1.4rem;margin-top:0}code{background:#f0f1f4;padding:.1rem .3rem;border-radius:4px}</style></head>
<body><main><h1>${escapeHtml(title)}</h1>
${body}</main></body></html>`;
}

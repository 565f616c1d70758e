import { renderErrorPage } from '../oauth/error-page.js';
import { escapeHtml } from '../html.js';

/**
 * The page for a sign-in at the IdP that did not complete. With `retryUrl` it links back to the
 * consent flow, which is still waiting at its identity step.
 */
export function renderLoginErrorPage(error: string, description: string, retryUrl: string | null): string {
  const page = renderErrorPage(error, description, 'Sign-in did not complete');
  if (!retryUrl) return page;
  return page.replace('</main>', `<p><a href="${escapeHtml(retryUrl)}">Try again</a></p></main>`);
}

import { renderMessage } from '../message-page.js';

const hints: Record<string, string> = {
  invalid_request: 'The application sent a request the gateway cannot accept.',
  invalid_client: 'The application is not known to the gateway, or could not prove who it is.',
  invalid_redirect_uri: 'The application asked to return to an address it did not register.',
  access_denied: 'Access was refused.',
  expired: 'This sign-in request has expired. Go back to your application and try again.',
  session_not_found: 'This sign-in request belongs to another browser, or its cookie is gone. Start again from your application.',
};

/** A page with a heading and a few sentences, in the same look (and header) as every server-rendered page. */
export function renderMessagePage(title: string, sentences: string[]): string {
  return renderMessage({ title, sentences });
}

/** A readable error page for the browser (never a stack trace). */
export function renderErrorPage(error: string, description: string, title = 'Something went wrong'): string {
  return renderMessage({ title, sentences: [hints[error] ?? 'The request could not be completed.', ...(description ? [description] : [])], errorCode: error });
}

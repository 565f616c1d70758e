import { errors } from 'oidc-provider';
import { validateRedirectUris } from './redirect-uris.js';

/** C0 and C1 controls (NUL, terminal escapes, line breaks) and the characters that reorder bidirectional text. */
const unshowable = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

/** The client metadata the gateway checks beyond oidc-provider's own rules. */
export const checkedClientMetadata = ['redirect_uris', 'client_name'];

/**
 * oidc-provider's `extraClientMetadata.validator` for {@link checkedClientMetadata}: the redirect
 * URI policy (`redirect-uris.ts`) and {@link validateClientName}. Runs on registrations and on
 * client ID metadata documents alike.
 */
export function validateClientMetadata(ctx: unknown, key: string, value: unknown, metadata?: Record<string, unknown>): void {
  if (key === 'client_name') validateClientName(value);
  else validateRedirectUris(ctx, key, value, metadata);
}

/**
 * A client's name is shown to the user on the consent screen and to operators by the admin CLI:
 * one with control characters (a NUL, terminal escapes) or bidirectional formatting characters
 * (which make a name read as another) is refused.
 */
export function validateClientName(value: unknown): void {
  if (typeof value === 'string' && unshowable.test(value)) {
    throw new errors.InvalidClientMetadata('client_name must not contain control characters or bidirectional formatting characters');
  }
}

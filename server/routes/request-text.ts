import { InvalidRequestError } from '../errors.js';

/**
 * Text a request hands to a store lookup (a query filter, a user or client id in a path): refused
 * with `400 invalid_request` when it holds a control character. No stored id or name has one, and
 * PostgreSQL text cannot hold a NUL at all (the query itself would fail).
 */
export function plainText(name: string, value: string): string {
  if (/[\u0000-\u001f\u007f]/.test(value)) throw new InvalidRequestError(`${name} must not contain control characters`);
  return value;
}

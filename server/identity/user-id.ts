/** Longest user id a consent flow takes; the workflow's `chooseIdentity` validator has the same bound. */
export const maxUserIdLength = 256;

/**
 * The user id, trimmed, when it is 1 to {@link maxUserIdLength} characters with no control
 * characters; otherwise undefined. Applies to typed names, proxy headers and IdP subjects alike.
 */
export function validUserId(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const userId = value.trim();
  if (userId === '' || userId.length > maxUserIdLength || /[\u0000-\u001f\u007f]/.test(userId)) return undefined;
  return userId;
}

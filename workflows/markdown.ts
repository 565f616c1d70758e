/**
 * Text that came from outside (a client's name or id, a typed user name, a redirect host, an
 * upstream's error) as literal text inside the Markdown of workflow summaries and details, which
 * the Temporal Web UI renders: every ASCII punctuation character backslash-escaped (CommonMark
 * §2.4), so no emphasis, link, image, heading, list, table, HTML or autolink can form; control
 * characters and line breaks become spaces; at most `maxLength` characters are kept.
 */
export function markdownText(value: string, maxLength = 200): string {
  const oneLine = value.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ');
  const clipped = oneLine.length > maxLength ? `${oneLine.slice(0, maxLength)}…` : oneLine;
  return clipped.replace(/[!-/:-@[-`{-~]/g, '\\$&');
}

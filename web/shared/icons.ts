import { svg, type SVGTemplateResult } from 'lit';

/** Line icons drawn inline, so the page needs no image or font requests (CSP `default-src 'self'`). */
export const ICONS = {
  check: svg`<path d="M5 12.5l4.5 4.5L19 7.5" />`,
  cross: svg`<path d="M7 7l10 10M17 7L7 17" />`,
  clock: svg`<circle cx="12" cy="12" r="8.5" /><path d="M12 7.5V12l3 2" />`,
  alert: svg`<path d="M12 6.5v7" /><circle cx="12" cy="17.25" r="1.4" fill="currentColor" stroke="none" />`,
  shield: svg`<path d="M12 3l7 3v5c0 4.5-3 8.3-7 10-4-1.7-7-5.5-7-10V6z" /><path d="M9 12l2 2 4-4" />`,
} as const;

export type IconName = keyof typeof ICONS;

/** A decorative 24×24 stroke icon in the current text colour, hidden from assistive technology. */
export function icon(name: IconName, size = 24): SVGTemplateResult {
  return svg`<svg
    viewBox="0 0 24 24"
    width=${size}
    height=${size}
    fill="none"
    stroke="currentColor"
    stroke-width="2.25"
    stroke-linecap="round"
    stroke-linejoin="round"
    aria-hidden="true"
    focusable="false"
  >${ICONS[name]}</svg>`;
}

import { LitElement, css, html, nothing, type PropertyValues, type TemplateResult } from 'lit';

import { icon } from '../shared/icons.js';
import { ApiError, INVALID_RESPONSE, NETWORK_ERROR } from '../shared/json-api.js';
import { documentStyles, pageShellStyles, sharedStyles, themeStyles } from '../shared/styles.js';
import { stepCounter, stepRow, type OpenStep } from '../../workflows/consent-flow/steps.js';
import { ConsentApi, isRedirect, type Decision, type FlowView, type UpstreamView } from './api.js';
import { clientLabel } from './approve-step.js';
import { consentEvent, type ConsentEvent } from './events.js';
import type { MessageKind } from './flow-message.js';
import './approve-step.js';
import './flow-message.js';
import './identity-step.js';
import './services-step.js';

/** How often the header-mode identity step asks whether the proxy's identity has arrived. */
const HEADER_POLL_MS = 2_000;
/** setTimeout's largest delay; a flow never lives that long. */
const MAX_TIMER_MS = 2_147_483_647;
/** Schemes `location.assign` must never be handed: they run or embed content instead of navigating. */
const UNSAFE_SCHEMES = new Set(['javascript:', 'data:', 'vbscript:', 'blob:', 'file:']);

/** Something went wrong; `blocking` replaces the screen, otherwise it shows above the current step. */
interface Failure {
  heading: string;
  message: string;
  detail: string;
  retry: (() => Promise<void>) | null;
  blocking: boolean;
}

/** The page is on its way elsewhere. */
interface Leaving {
  kind: MessageKind;
  heading: string;
  message: string;
  detail: string;
}

/** What the card shows, and the document title that goes with it. */
interface Screen {
  title: string;
  /** "Step n of m", on the steps of the table. */
  counter?: string;
  body: TemplateResult;
}

/**
 * The consent page: loads the flow from `{api-base}/state`, shows the step it is at (a step of
 * the table in `workflows/consent-flow/steps.ts`, or done), sends the user's answers to the JSON API and follows the flow's
 * `redirectTo`. Pending requests disable the step's controls; failures are rendered, never thrown:
 * 409 re-reads the state, 410 shows the expired message, a network failure offers "Try again".
 *
 * @element cg-consent-app
 * @attr flow-id - the flow (interaction) id (property `flowId`)
 * @attr csrf-token - sent as `X-CSRF-Token` on every POST (property `csrfToken`)
 * @attr api-base - the API's base path, e.g. `/interaction/<flow-id>`; defaults to that (property `apiBase`)
 * @fires flow-change - `{ view: FlowView }`: a new view of the flow arrived. Bubbles, composed.
 * @fires consent-navigate - `{ url: string }`: the page is about to leave for `url`; cancelable. Bubbles, composed.
 * @listens identity-submit, services-submit, connect-upstream, consent-decision, flow-retry - from the steps
 * @csspart page - the full-height page area
 * @csspart header - the "Consent Gateway" header
 * @csspart card - the centred card holding the current step
 * @csspart asking - the "<client> wants to use your connected services" line
 * @csspart error - the error notice shown above a step
 * @csspart counter - "Step n of m" above a step's screen
 * @cssprop --cg-accent - and the other `--cg-*` tokens in web/shared/styles.ts
 */
export class ConsentApp extends LitElement {
  static override properties = {
    flowId: { type: String, attribute: 'flow-id' },
    csrfToken: { type: String, attribute: 'csrf-token' },
    apiBase: { type: String, attribute: 'api-base' },
    view: { state: true },
    pending: { state: true },
    failure: { state: true },
    leaving: { state: true },
    expired: { state: true },
  };

  static override styles = [
    themeStyles,
    sharedStyles,
    pageShellStyles,
    css`
      header {
        font-size: 1rem;
      }

      .counter {
        margin: 0 0 0.25rem;
        color: var(--cg-muted);
        font-size: 0.8125rem;
        letter-spacing: 0.02em;
      }

      .asking {
        margin: -0.25rem 0 1.5rem;
        padding-bottom: 1rem;
        border-bottom: 1px solid var(--cg-border);
        color: var(--cg-muted);
        font-size: 0.9375rem;
        overflow-wrap: anywhere;
      }

      .asking strong {
        color: var(--cg-text);
      }

      .notice.error {
        flex-wrap: wrap;
        justify-content: space-between;
        align-items: center;
      }

      .notice.error p {
        margin: 0;
      }

      .notice.error .detail {
        font-size: 0.875rem;
        opacity: 0.9;
      }
    `,
  ];

  declare flowId: string;
  declare csrfToken: string;
  declare apiBase: string;
  declare private view: FlowView | null;
  declare private pending: boolean;
  declare private failure: Failure | null;
  declare private leaving: Leaving | null;
  declare private expired: boolean;
  private timers: Set<ReturnType<typeof setTimeout>>;
  private screenTitle: string;

  constructor() {
    super();
    this.flowId = '';
    this.csrfToken = '';
    this.apiBase = '';
    this.view = null;
    this.pending = false;
    this.failure = null;
    this.leaving = null;
    this.expired = false;
    this.timers = new Set();
    this.screenTitle = 'Sign in';
  }

  override connectedCallback(): void {
    super.connectedCallback();
    adoptDocumentStyles();
    ensureViewport();
    window.addEventListener('pageshow', this.onPageShow);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    window.removeEventListener('pageshow', this.onPageShow);
    this.clearTimers();
  }

  private clearTimers(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  /** Back from the IdP or an upstream through the back/forward cache: the flow may have moved on. */
  private onPageShow = (event: PageTransitionEvent): void => {
    if (!event.persisted || !this.leaving) return;
    this.leaving = null;
    void this.load();
  };

  protected override firstUpdated(changed: PropertyValues<this>): void {
    super.firstUpdated(changed);
    if (!this.apiBase && !this.flowId) {
      this.failure = {
        heading: 'Something went wrong',
        message: 'This page does not name a sign-in request. Go back to your application and try again.',
        detail: '',
        retry: null,
        blocking: true,
      };
      return;
    }
    void this.load();
  }

  protected override updated(changed: PropertyValues<this>): void {
    super.updated(changed);
    document.title = `${this.screenTitle} · Consent Gateway`;
  }

  protected override render() {
    const screen = this.screen();
    this.screenTitle = screen.title;
    const failure = this.failure;
    const inline = failure && !failure.blocking && this.view && !this.leaving && !this.expired ? failure : null;
    return html`
      <div class="page" part="page">
        <header part="header">
          <span class="logo">${icon('shield', 20)}</span>
          <span>Consent Gateway</span>
        </header>
        <main class="card" part="card">
          ${this.view
            ? html`<p class="asking" part="asking">
                <strong>${clientLabel(this.view.client)}</strong> wants to use your connected services
              </p>`
            : nothing}
          ${inline ? this.renderInlineFailure(inline) : nothing}
          ${screen.counter ? html`<p class="counter" part="counter">${screen.counter}</p>` : nothing} ${screen.body}
        </main>
      </div>
    `;
  }

  private renderInlineFailure(failure: Failure) {
    return html`
      <div class="notice error" part="error" role="alert">
        <div>
          <p>${failure.message}</p>
          ${failure.detail ? html`<p class="detail">${failure.detail}</p>` : nothing}
        </div>
        ${failure.retry
          ? html`<button class="small" type="button" ?disabled=${this.pending} @click=${this.onRetry}>Try again</button>`
          : nothing}
      </div>
    `;
  }

  private screen(): Screen {
    if (this.expired) {
      return { title: 'Request expired', body: html`<cg-flow-message kind="expired"></cg-flow-message>` };
    }
    if (this.leaving) return this.message(this.leaving.heading, this.leaving);
    const failure = this.failure;
    if (failure && (failure.blocking || !this.view)) {
      return this.message(failure.heading, {
        kind: 'error',
        message: failure.message,
        detail: failure.detail,
        retryable: failure.retry !== null,
      });
    }
    const view = this.view;
    if (!view) {
      return this.message('Loading', { kind: 'pending', message: 'Loading your sign-in request…' });
    }
    if (view.status === 'expired') {
      return { title: 'Request expired', body: html`<cg-flow-message kind="expired"></cg-flow-message>` };
    }
    if (view.step !== 'done') {
      return { title: stepRow(view.step).title, counter: stepCounter(view.step), body: this.stepScreens[view.step](view) };
    }
    if (view.status === 'denied') {
      return this.message('Access denied', { kind: 'refused', message: 'You can close this window.' });
    }
    if (view.status === 'approved') {
      return this.message('Access approved', { kind: 'done', message: 'You can close this window.' });
    }
    return this.message('Finishing', { kind: 'pending', message: 'Finishing your sign-in…' });
  }

  /**
   * The screen of each step of the table (`workflows/consent-flow/steps.ts`), its element named
   * there: a step added to the table without a screen here does not compile.
   */
  private readonly stepScreens: Record<OpenStep, (view: FlowView) => TemplateResult> = {
    identity: (view) =>
      html`<cg-identity-step mode=${view.identityMode} ?pending=${this.pending} @identity-submit=${this.onIdentitySubmit}></cg-identity-step>`,
    services: (view) => html`<cg-services-step
      .upstreams=${view.upstreams}
      user=${view.user?.id ?? ''}
      ?pending=${this.pending}
      @services-submit=${this.onServicesSubmit}
      @connect-upstream=${this.onConnectUpstream}
    ></cg-services-step>`,
    approve: (view) => html`<cg-approve-step
      .client=${view.client}
      .upstreams=${chosenUpstreams(view)}
      .scopes=${view.scopes}
      user=${view.user?.id ?? ''}
      ?pending=${this.pending}
      @consent-decision=${this.onDecision}
    ></cg-approve-step>`,
  };

  private message(
    heading: string,
    options: { kind: MessageKind; message: string; detail?: string; retryable?: boolean },
  ): Screen {
    return {
      title: heading,
      body: html`<cg-flow-message
        kind=${options.kind}
        heading=${heading}
        message=${options.message}
        detail=${options.detail ?? ''}
        ?retryable=${options.retryable ?? false}
        ?pending=${this.pending}
        @flow-retry=${this.onRetry}
      ></cg-flow-message>`,
    };
  }

  private get api(): ConsentApi {
    return new ConsentApi({
      apiBase: this.apiBase || `/interaction/${encodeURIComponent(this.flowId)}`,
      csrfToken: this.csrfToken,
    });
  }

  /** Re-reads the flow and renders it. */
  private load(): Promise<void> {
    return this.act(
      () => this.api.getState(),
      (view) => this.show(view),
      () => this.load(),
    );
  }

  private onIdentitySubmit(event: ConsentEvent<'identity-submit'>): void {
    const { userId } = event.detail;
    const submit = (): Promise<void> =>
      this.act(
        () => this.api.chooseIdentity(userId),
        (result) => {
          if (isRedirect(result)) {
            this.leave(result.redirectTo, {
              kind: 'redirect',
              heading: 'Sign in',
              message: "Taking you to your organisation's sign-in page…",
              detail: '',
            });
          } else {
            this.show(result);
          }
        },
        submit,
      );
    void submit();
  }

  private onServicesSubmit(event: ConsentEvent<'services-submit'>): void {
    const { upstreams } = event.detail;
    const submit = (): Promise<void> =>
      this.act(
        () => this.api.chooseServices(upstreams),
        (view) => this.show(view),
        submit,
      );
    void submit();
  }

  private onConnectUpstream(event: ConsentEvent<'connect-upstream'>): void {
    const { upstream } = event.detail;
    const name = this.view?.upstreams.find((candidate) => candidate.name === upstream)?.displayName ?? upstream;
    const submit = (): Promise<void> =>
      this.act(
        () => this.api.connect(upstream),
        (result) =>
          this.leave(result.redirectTo, {
            kind: 'redirect',
            heading: `Connect ${name}`,
            message: `Taking you to ${name} to connect your account…`,
            detail: '',
          }),
        submit,
      );
    void submit();
  }

  private onDecision(event: ConsentEvent<'consent-decision'>): void {
    const decision: Decision = event.detail.decision;
    const submit = (): Promise<void> =>
      this.act(
        () => this.api.decide(decision),
        (view) => this.show(view),
        submit,
      );
    void submit();
  }

  private onRetry(): void {
    const retry = this.failure?.retry;
    if (retry) void retry();
  }

  /** Runs one request at a time; its failure is rendered, never thrown. */
  private async act<T>(request: () => Promise<T>, onResult: (result: T) => void, retry: () => Promise<void>): Promise<void> {
    if (this.pending) return;
    this.pending = true;
    try {
      const result = await request();
      this.failure = null;
      onResult(result);
    } catch (error) {
      await this.fail(error, retry);
    } finally {
      this.pending = false;
    }
  }

  private async fail(error: unknown, retry: () => Promise<void>): Promise<void> {
    if (!(error instanceof ApiError)) {
      this.failure = {
        heading: 'Something went wrong',
        message: 'This page ran into a problem.',
        detail: error instanceof Error ? error.message : '',
        retry,
        blocking: true,
      };
      return;
    }
    if (error.status === 410 || error.error === 'expired') {
      this.failure = null;
      this.expired = true;
      return;
    }
    if (error.status === 409) {
      // The flow moved on (another tab, a retried request): what it is now is the answer.
      try {
        const view = await this.api.getState();
        this.failure = null;
        this.show(view);
      } catch (again) {
        if (again instanceof ApiError && again.status === 409) {
          this.failure = { ...serverFailure(again), retry: () => this.load() };
        } else {
          await this.fail(again, () => this.load());
        }
      }
      return;
    }
    if (error.status === 0 && error.error === NETWORK_ERROR) {
      this.failure = {
        heading: "Can't reach the gateway",
        message: "The gateway can't be reached right now. Check your connection and try again.",
        detail: '',
        retry,
        blocking: false,
      };
      return;
    }
    if (error.status === 403) {
      this.failure = {
        heading: "Can't continue here",
        message: 'This sign-in request cannot be continued from this browser. Go back to your application and try again.',
        detail: error.description,
        retry: null,
        blocking: true,
      };
      return;
    }
    if (error.status === 404) {
      this.failure = {
        heading: 'Request not found',
        message: 'This sign-in request does not exist or has already finished. Go back to your application and try again.',
        detail: error.description,
        retry: null,
        blocking: true,
      };
      return;
    }
    if (error.status === 400) {
      this.failure = {
        heading: 'Something went wrong',
        message: error.description || 'The gateway did not accept this answer.',
        detail: '',
        retry: null,
        blocking: false,
      };
      return;
    }
    this.failure = { ...serverFailure(error), retry };
  }

  /** Renders a new view of the flow, and follows it when it is done. */
  private show(view: FlowView): void {
    this.view = view;
    this.dispatchEvent(consentEvent('flow-change', { view }));
    if (view.status === 'expired') {
      this.expired = true;
      return;
    }
    if (view.redirectTo) {
      const client = clientLabel(view.client);
      this.leave(view.redirectTo, {
        kind: view.status === 'denied' ? 'refused' : 'redirect',
        heading: view.status === 'denied' ? 'Access denied' : 'Access approved',
        message: `Returning you to ${client}…`,
        detail: '',
      });
      return;
    }
    this.scheduleFollowUps(view);
  }

  /** Leaves for `url` unless a listener of `consent-navigate` keeps the page. */
  private leave(url: string, screen: Leaving): void {
    let target: URL;
    try {
      target = new URL(url, document.baseURI);
    } catch {
      target = new URL('about:invalid');
    }
    if (UNSAFE_SCHEMES.has(target.protocol) || target.protocol === 'about:') {
      this.failure = {
        heading: 'Something went wrong',
        message: 'The gateway sent this page somewhere it cannot go. Go back to your application and try again.',
        detail: '',
        retry: null,
        blocking: true,
      };
      return;
    }
    const appScheme = target.protocol !== 'https:' && target.protocol !== 'http:';
    this.leaving = {
      ...screen,
      detail: appScheme && this.view ? `You can close this window once ${clientLabel(this.view.client)} has opened.` : screen.detail,
    };
    this.clearTimers();
    const proceed = this.dispatchEvent(consentEvent('consent-navigate', { url: target.href }, { cancelable: true }));
    if (proceed) window.location.assign(target.href);
  }

  /**
   * Re-reads the flow when it should have expired, so the page does not sit on a dead form, and
   * while a trusted proxy's identity is awaited in `header` mode.
   */
  private scheduleFollowUps(view: FlowView): void {
    this.clearTimers();
    const later = (ms: number, run: () => void) => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        run();
      }, ms);
      this.timers.add(timer);
    };
    const untilExpiry = Date.parse(view.expiresAt) - Date.now() + 1_000;
    if (Number.isFinite(untilExpiry) && untilExpiry <= MAX_TIMER_MS) later(Math.max(untilExpiry, 0), () => void this.load());
    if (view.step === 'identity' && view.identityMode === 'header') later(HEADER_POLL_MS, () => void this.load());
  }
}

function chosenUpstreams(view: FlowView): UpstreamView[] {
  return view.chosenUpstreams.map(
    (name) =>
      view.upstreams.find((upstream) => upstream.name === name) ?? {
        name,
        displayName: name,
        status: 'ready',
        authRequired: false,
        scopes: [],
      },
  );
}

function serverFailure(error: ApiError): Omit<Failure, 'retry'> {
  return {
    heading: 'Something went wrong',
    message:
      error.error === INVALID_RESPONSE
        ? 'The gateway sent an answer this page does not understand.'
        : 'The gateway could not complete this step.',
    detail: error.description,
    blocking: false,
  };
}

function adoptDocumentStyles(): void {
  const sheet = documentStyles.styleSheet;
  if (sheet && !document.adoptedStyleSheets.includes(sheet)) {
    document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
  }
}

/** Phones lay the page out at device width only with a viewport meta element. */
function ensureViewport(): void {
  if (document.querySelector('meta[name="viewport"]')) return;
  const meta = document.createElement('meta');
  meta.name = 'viewport';
  meta.content = 'width=device-width, initial-scale=1';
  document.head.append(meta);
}

if (!customElements.get('cg-consent-app')) customElements.define('cg-consent-app', ConsentApp);

declare global {
  interface HTMLElementTagNameMap {
    'cg-consent-app': ConsentApp;
  }
}

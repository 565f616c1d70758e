/**
 * The consent screens' JSON API: the `FlowView` the server renders a flow as, and a small client
 * for `{apiBase}/state`, `/identity`, `/services`, `/decision` and `/connect`.
 *
 * The view types are the server's (`server/views/consent.ts`); nothing here runs outside a browser.
 */

import type {
  ApiErrorBody,
  ClientRegistration,
  ClientView,
  Decision,
  FlowStatus,
  FlowStep,
  FlowView,
  IdentityMode,
  RedirectResult,
  UpstreamStatus,
  UpstreamView,
} from '../../server/views/consent.js';
// The browser checks answers against the server's own lists at run time.
import { upstreamStatuses } from '../../server/views/consent.js';
import { clientRegistrations, consentStatuses, consentSteps, identitySources } from '../../workflows/consent-flow/steps.js';
import { isObject, isStringArray, JsonApiClient, oneOf } from '../shared/json-api.js';

export type { ApiErrorBody, ClientRegistration, ClientView, Decision, FlowStatus, FlowStep, FlowView, IdentityMode, RedirectResult, UpstreamStatus, UpstreamView };

/** Whether a step's answer sends the browser elsewhere rather than describing the flow. */
export function isRedirect(result: FlowView | RedirectResult): result is RedirectResult {
  return !('step' in result) && typeof result.redirectTo === 'string';
}

function isUpstreamView(value: unknown): value is UpstreamView {
  return (
    isObject(value) &&
    typeof value['name'] === 'string' &&
    typeof value['displayName'] === 'string' &&
    oneOf(upstreamStatuses, value['status']) &&
    typeof value['authRequired'] === 'boolean' &&
    isStringArray(value['scopes'])
  );
}

/** Whether `value` has the shape of a {@link FlowView}, so screens never render half an object. */
export function isFlowView(value: unknown): value is FlowView {
  if (!isObject(value)) return false;
  const { client, user, upstreams } = value;
  return (
    typeof value['flowId'] === 'string' &&
    oneOf(consentSteps, value['step']) &&
    oneOf(consentStatuses, value['status']) &&
    oneOf(identitySources, value['identityMode']) &&
    (user === null || (isObject(user) && typeof user['id'] === 'string')) &&
    isObject(client) &&
    typeof client['clientId'] === 'string' &&
    (client['clientName'] === null || typeof client['clientName'] === 'string') &&
    (client['redirectHost'] === null || typeof client['redirectHost'] === 'string') &&
    oneOf(clientRegistrations, client['registration']) &&
    Array.isArray(upstreams) &&
    upstreams.every(isUpstreamView) &&
    isStringArray(value['chosenUpstreams']) &&
    isStringArray(value['scopes']) &&
    typeof value['expiresAt'] === 'string' &&
    (value['redirectTo'] === null || typeof value['redirectTo'] === 'string')
  );
}

function isRedirectResult(value: unknown): value is RedirectResult {
  return isObject(value) && !('step' in value) && typeof value['redirectTo'] === 'string';
}

function isIdentityResult(value: unknown): value is FlowView | RedirectResult {
  return isFlowView(value) || isRedirectResult(value);
}

/**
 * The consent flow's JSON API, same origin only (`credentials: 'same-origin'`). Every method
 * resolves with the parsed answer or rejects with an `ApiError` (`web/shared/json-api.ts`).
 */
export class ConsentApi extends JsonApiClient {
  /** `GET {apiBase}/state`. */
  getState(): Promise<FlowView> {
    return this.request('GET', '/state', undefined, isFlowView);
  }

  /** `POST {apiBase}/identity` with `{userId}` (dev mode) or `{}` (oidc: answers with the IdP's URL). */
  chooseIdentity(userId?: string): Promise<FlowView | RedirectResult> {
    const body = userId === undefined ? {} : { userId };
    return this.request('POST', '/identity', body, isIdentityResult);
  }

  /** `POST {apiBase}/services` with `{upstreams}`. */
  chooseServices(upstreams: readonly string[]): Promise<FlowView> {
    return this.request('POST', '/services', { upstreams: [...upstreams] }, isFlowView);
  }

  /** `POST {apiBase}/decision` with `{decision}`. */
  decide(decision: Decision): Promise<FlowView> {
    return this.request('POST', '/decision', { decision }, isFlowView);
  }

  /** `POST {apiBase}/connect` with `{upstream}`: answers with the upstream's authorization URL. */
  connect(upstream: string): Promise<RedirectResult> {
    return this.request('POST', '/connect', { upstream }, isRedirectResult);
  }
}

import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  IDP_REFUSED,
  IDP_UNAVAILABLE,
  INVALID_AUTHORIZATION_RESPONSE,
  INVALID_TOKEN_RESPONSE,
  IdentityLoginError,
  OidcLogin,
  TOKEN_REQUEST_FAILED,
  UNKNOWN_STATE,
} from '../../../server/identity/oidc-login.js';
import { PendingLogins } from '../../../server/identity/pending-logins.js';
import { SqliteStore } from '../../../server/store/sqlite-store.js';
import { freePort } from '../../helpers/free-port.js';
import { startFakeIdp, type FakeIdp } from '../../helpers/fake-idp.js';

const redirectUri = 'http://127.0.0.1:9/oauth/idp/callback';

let dir: string;
let store: SqliteStore;
let idp: FakeIdp;
let publicIdp: FakeIdp;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cg-oidc-login-'));
  store = await SqliteStore.open(path.join(dir, 'gateway.sqlite'));
  idp = await startFakeIdp({ redirectUris: [redirectUri], autoLogin: 'idp-user-1' });
  publicIdp = await startFakeIdp({ redirectUris: [redirectUri], clientId: 'gateway-public', clientSecret: null, autoLogin: 'idp-user-2' });
});

afterAll(async () => {
  await idp?.close();
  await publicIdp?.close();
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  idp.answerWith({ login: 'idp-user-1' });
});

function loginAt(at: FakeIdp, overrides: { clientSecret?: string } = {}): OidcLogin {
  return new OidcLogin({
    issuer: at.issuer,
    clientId: at.clientId,
    clientSecret: overrides.clientSecret ?? at.clientSecret,
    scopes: ['openid'],
    redirectUri,
    pending: new PendingLogins(store.oauth),
  });
}

/** Starts a sign-in and lets the IdP answer; returns the callback's query. */
async function signIn(login: OidcLogin, at: FakeIdp, flowId = 'flow-0123456789'): Promise<URLSearchParams> {
  const back = await at.completeAuthorization(await login.start(flowId));
  expect(`${back.origin}${back.pathname}`).toBe(redirectUri);
  return back.searchParams;
}

async function failure(promise: Promise<unknown>): Promise<IdentityLoginError> {
  const error = await promise.then(() => undefined, (caught: unknown) => caught);
  expect(error).toBeInstanceOf(IdentityLoginError);
  return error as IdentityLoginError;
}

describe('OidcLogin', () => {
  it('builds an authorization request with PKCE S256, state and nonce, and keeps the verifier server-side', async () => {
    const login = loginAt(idp);
    const url = new URL(await login.start('flow-0123456789'));
    expect(`${url.origin}${url.pathname}`).toBe(`${idp.issuer}/auth`);
    const params = url.searchParams;
    expect(Object.fromEntries(params)).toMatchObject({ client_id: idp.clientId, redirect_uri: redirectUri, response_type: 'code', scope: 'openid', code_challenge_method: 'S256' });
    expect(params.get('state')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(params.get('nonce')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(params.has('code_verifier')).toBe(false);
    const pending = await login.pendingFor(new URLSearchParams({ state: params.get('state')! }));
    expect(pending).toMatchObject({ flowId: 'flow-0123456789', nonce: params.get('nonce') });
    expect(createHash('sha256').update(pending.codeVerifier).digest('base64url')).toBe(params.get('code_challenge'));
  });

  it('signs in as a confidential client (client_secret_basic) and returns the ID token sub', async () => {
    const login = loginAt(idp);
    const callback = await signIn(login, idp);
    expect(callback.get('iss')).toBe(idp.issuer);
    const exchanges = idp.counters.codeExchanges;
    expect(await login.finish(callback, await login.pendingFor(callback))).toBe('idp-user-1');
    expect(idp.counters.codeExchanges).toBe(exchanges + 1);
  });

  it('signs in as a public client with PKCE only', async () => {
    const login = loginAt(publicIdp);
    const callback = await signIn(login, publicIdp);
    expect(await login.finish(callback, await login.pendingFor(callback))).toBe('idp-user-2');
  });

  it('uses a sign-in up: the same callback cannot be replayed', async () => {
    const login = loginAt(idp);
    const callback = await signIn(login, idp);
    await login.finish(callback, await login.pendingFor(callback));
    expect((await failure(login.pendingFor(callback))).code).toBe(UNKNOWN_STATE);
  });

  it('refuses an unknown, missing or repeated state', async () => {
    const login = loginAt(idp);
    const callback = await signIn(login, idp);
    const state = callback.get('state')!;
    expect((await failure(login.pendingFor(new URLSearchParams({ code: 'x', state: 'forged-state' })))).code).toBe(UNKNOWN_STATE);
    expect((await failure(login.pendingFor(new URLSearchParams({ code: 'x' })))).code).toBe(UNKNOWN_STATE);
    expect((await failure(login.pendingFor(new URLSearchParams([['state', state], ['state', state]])))).code).toBe(UNKNOWN_STATE);
  });

  it('refuses a response with another iss (RFC 9207) before calling the token endpoint', async () => {
    const login = loginAt(idp);
    const callback = await signIn(login, idp);
    callback.set('iss', 'http://127.0.0.1:1');
    const before = { ...idp.counters };
    const error = await failure(login.finish(callback, await login.pendingFor(callback)));
    expect(error.code).toBe(INVALID_AUTHORIZATION_RESPONSE);
    expect(error.message).toContain('"iss"');
    expect(idp.counters).toEqual(before);
  });

  it('refuses a response without iss from an IdP that advertises it', async () => {
    const login = loginAt(idp);
    const callback = await signIn(login, idp);
    callback.delete('iss');
    expect((await failure(login.finish(callback, await login.pendingFor(callback)))).code).toBe(INVALID_AUTHORIZATION_RESPONSE);
  });

  it('reports an error response with the IdP error code', async () => {
    idp.answerWith({ error: 'access_denied', description: 'nope' });
    const login = loginAt(idp);
    const callback = await signIn(login, idp);
    expect(callback.get('error')).toBe('access_denied');
    const error = await failure(login.finish(callback, await login.pendingFor(callback)));
    expect(error.code).toBe(IDP_REFUSED);
    expect(error.idpError).toBe('access_denied');
  });

  it('reports a code the token endpoint refuses', async () => {
    const login = loginAt(idp);
    const callback = await signIn(login, idp);
    callback.set('code', 'not-a-code');
    const error = await failure(login.finish(callback, await login.pendingFor(callback)));
    expect(error.code).toBe(TOKEN_REQUEST_FAILED);
    expect(error.idpError).toBe('invalid_grant');
  });

  it('reports a wrong client secret as a refused token request', async () => {
    const login = loginAt(idp, { clientSecret: 'wrong-secret-0123456789' });
    const callback = await signIn(login, idp);
    const error = await failure(login.finish(callback, await login.pendingFor(callback)));
    expect(error.code).toBe(TOKEN_REQUEST_FAILED);
    expect(error.idpError).toBe('invalid_client');
  });

  it('sends the verifier: the IdP refuses the code for another one', async () => {
    const login = loginAt(idp);
    const callback = await signIn(login, idp);
    const pending = await login.pendingFor(callback);
    const error = await failure(login.finish(callback, { ...pending, codeVerifier: 'x'.repeat(43) }));
    expect(error.code).toBe(TOKEN_REQUEST_FAILED);
    expect(error.idpError).toBe('invalid_grant');
  });

  it('refuses an ID token whose nonce is not the one sent', async () => {
    const login = loginAt(idp);
    const callback = await signIn(login, idp);
    const pending = await login.pendingFor(callback);
    const error = await failure(login.finish(callback, { ...pending, nonce: 'another-nonce' }));
    expect(error.code).toBe(INVALID_TOKEN_RESPONSE);
    expect(error.message).toContain('nonce');
  });

  it('reports an IdP it cannot reach', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const login = new OidcLogin({ issuer: closed, clientId: 'x', scopes: ['openid'], redirectUri, pending: new PendingLogins(store.oauth), timeoutMs: 2_000 });
    expect((await failure(login.start('flow-0123456789'))).code).toBe(IDP_UNAVAILABLE);
  });
});

import { ApplicationFailure } from '@temporalio/activity';
import * as oauth from 'oauth4webapi';
import type { UpstreamAuthorizationStore } from '../../server/store/store.js';
import { activityLog } from '../log.js';
import { endpointOptions, type OAuthUpstream } from './discovery.js';

/** How the gateway is a client at an upstream's authorization server, as configured. */
export type UpstreamClientSettings =
  | { kind: 'static'; clientId: string; clientSecret?: string; authMethod: 'client_secret_basic' | 'client_secret_post' | 'none' }
  | { kind: 'dynamic' }
  | { kind: 'metadata-document' };

/** Seals secrets for the store and opens them, each bound to a label naming where it is stored. */
export interface Sealer {
  seal(plaintext: string, associatedData: string): string;
  open(sealed: string, associatedData: string): string;
}

/** What {@link createClientAuth} needs. */
export interface ClientAuthDeps {
  store: Pick<UpstreamAuthorizationStore, 'getUpstreamClient' | 'saveUpstreamClient'>;
  cipher: Sealer;
  /** The gateway's callback at every upstream; also where its client ID metadata document is served from. */
  redirectUri: string;
}

/** The gateway's client at an upstream's authorization server, and how it authenticates at the token endpoint. */
export interface UpstreamClient {
  client: oauth.Client;
  auth: oauth.ClientAuth;
}

/**
 * The gateway's client at each upstream: a configured client id (and secret), its client ID
 * metadata document, or a client registered there once (RFC 7591) and stored with its secret sealed.
 */
export function createClientAuth(deps: ClientAuthDeps): (upstream: OAuthUpstream, as: oauth.AuthorizationServer) => Promise<UpstreamClient> {
  return async function upstreamClient(upstream, as) {
    const configured = upstream.auth.client;
    if (configured.kind === 'static') {
      const auth =
        configured.authMethod === 'none' || !configured.clientSecret
          ? oauth.None()
          : configured.authMethod === 'client_secret_post'
            ? oauth.ClientSecretPost(configured.clientSecret)
            : clientSecretBasic(configured.clientSecret);
      return { client: { client_id: configured.clientId } as oauth.Client, auth };
    }
    if (configured.kind === 'metadata-document') {
      if (as.client_id_metadata_document_supported !== true) {
        throw ApplicationFailure.nonRetryable(`${upstream.name} does not accept client ID metadata documents; configure a client id or dynamic registration`, 'invalid_client');
      }
      return { client: { client_id: new URL('/oauth/client-metadata.json', deps.redirectUri).href } as oauth.Client, auth: oauth.None() };
    }
    const stored = await deps.store.getUpstreamClient(upstream.name);
    if (stored && stored.issuer === as.issuer) {
      const secret = stored.clientSecret ? deps.cipher.open(stored.clientSecret, `upstream_clients:${upstream.name}`) : undefined;
      return { client: { client_id: stored.clientId } as oauth.Client, auth: registeredClientAuth(secret, stored.metadata, as) };
    }
    if (!as.registration_endpoint) {
      throw ApplicationFailure.nonRetryable(`${upstream.name} offers no dynamic registration; configure a client id`, 'invalid_client');
    }
    const response = await oauth.dynamicClientRegistrationRequest(
      as,
      {
        client_name: 'Consent Gateway',
        redirect_uris: [deps.redirectUri],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
        // SEP-837: a loopback redirect URI is a native client's (RFC 8252 §7.3); the gateway's public URL is a web one.
        application_type: isLoopbackRedirect(deps.redirectUri) ? 'native' : 'web',
      },
      endpointOptions(as, as.registration_endpoint),
    );
    const registered = await processRegistration(response);
    const secret = typeof registered.client_secret === 'string' ? registered.client_secret : undefined;
    const { client_secret: _secret, registration_access_token: _token, ...metadata } = registered as Record<string, unknown>;
    await deps.store.saveUpstreamClient({
      upstream: upstream.name,
      issuer: as.issuer,
      clientId: registered.client_id,
      clientSecret: secret ? deps.cipher.seal(secret, `upstream_clients:${upstream.name}`) : null,
      metadata,
      registeredAt: new Date().toISOString(),
    });
    activityLog().info('registered at upstream', { upstream: upstream.name, issuer: as.issuer });
    return { client: { client_id: registered.client_id } as oauth.Client, auth: registeredClientAuth(secret, metadata, as) };
  };
}

/**
 * How a registered client authenticates at the token endpoint: as the registration answered
 * (`token_endpoint_auth_method`, RFC 7591 §2), else `client_secret_post` when the server offers
 * only that, else `client_secret_basic` (RFC 8414 §2's default); no secret, no authentication.
 */
function registeredClientAuth(secret: string | undefined, metadata: Record<string, unknown>, as: oauth.AuthorizationServer): oauth.ClientAuth {
  if (!secret) return oauth.None();
  const supported = as.token_endpoint_auth_methods_supported ?? ['client_secret_basic'];
  const method = metadata.token_endpoint_auth_method;
  const post = method === 'client_secret_post' || (method !== 'client_secret_basic' && !supported.includes('client_secret_basic') && supported.includes('client_secret_post'));
  return post ? oauth.ClientSecretPost(secret) : clientSecretBasic(secret);
}

/**
 * RFC 7591 §3.2.1 registration response, as oauth4webapi checks it, except that a
 * `client_secret` without `client_secret_expires_at` is taken as never expiring (the value 0): some
 * servers issue a secret to a client that asked for none and leave the expiry out.
 */
async function processRegistration(response: Response): Promise<oauth.OmitSymbolProperties<oauth.Client>> {
  const copy = response.clone();
  try {
    return await oauth.processDynamicClientRegistrationResponse(response);
  } catch (error) {
    if (!(error instanceof oauth.OperationProcessingError) || !error.message.includes('client_secret_expires_at')) throw error;
    const body = (await copy.json()) as Record<string, unknown>;
    if (body.client_secret_expires_at !== undefined) throw error;
    return oauth.processDynamicClientRegistrationResponse(new Response(JSON.stringify({ ...body, client_secret_expires_at: 0 }), { status: copy.status, headers: copy.headers }));
  }
}

/**
 * `client_secret_basic` (RFC 6749 §2.3.1): the client id and secret, each encoded as
 * application/x-www-form-urlencoded the way the WHATWG URL Standard serializes it (unreserved
 * `-._*` kept as they are, space as `+`), in an HTTP Basic `Authorization` header. Servers that
 * decode nothing still read a plain client id such as `my-client` right.
 */
function clientSecretBasic(secret: string): oauth.ClientAuth {
  const encode = (value: string) => new URLSearchParams({ v: value }).toString().slice(2);
  return (_as, client, body, headers) => {
    body.delete('client_id');
    headers.set('authorization', `Basic ${Buffer.from(`${encode(client.client_id)}:${encode(secret)}`).toString('base64')}`);
  };
}

function isLoopbackRedirect(uri: string): boolean {
  const { protocol, hostname } = new URL(uri);
  return protocol === 'http:' && (hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname));
}

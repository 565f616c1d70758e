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
            : oauth.ClientSecretBasic(configured.clientSecret);
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
      return { client: { client_id: stored.clientId } as oauth.Client, auth: secret ? oauth.ClientSecretBasic(secret) : oauth.None() };
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
      },
      endpointOptions(as, as.registration_endpoint),
    );
    const registered = await oauth.processDynamicClientRegistrationResponse(response);
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
    return { client: { client_id: registered.client_id } as oauth.Client, auth: secret ? oauth.ClientSecretBasic(secret) : oauth.None() };
  };
}

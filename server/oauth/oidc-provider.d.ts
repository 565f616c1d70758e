// oidc-provider ships no type declarations; this covers the part of its API the gateway uses.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';
  import type Koa from 'koa';

  export interface InteractionPrompt {
    name: 'login' | 'consent' | string;
    reasons: string[];
    details: Record<string, unknown>;
  }

  export interface Interaction {
    uid: string;
    prompt: InteractionPrompt;
    params: Record<string, unknown> & { client_id: string; redirect_uri: string; scope?: string; resource?: string | string[] };
    session?: { accountId?: string; uid: string };
    grantId?: string;
    lastSubmission?: Record<string, unknown>;
    exp: number;
    result?: unknown;
    save(ttl: number): Promise<string>;
  }

  export type InteractionResult =
    | { login?: { accountId: string; remember?: boolean }; consent?: { grantId: string } }
    | { error: string; error_description?: string };

  export interface ClientModel {
    clientId: string;
    clientName?: string;
    redirectUris: string[];
    grantTypeAllowed(grantType: string): boolean;
    metadata(): Record<string, unknown>;
    readonly clientIdMetadataDocument?: boolean;
  }

  export interface Grant {
    jti: string;
    accountId: string;
    clientId: string;
    addOIDCScope(scope: string): void;
    addResourceScope(resource: string, scope: string): void;
    getOIDCScope(): string;
    getResourceScopeFinalized(resource: string): string;
    save(ttl?: number): Promise<string>;
    destroy(): Promise<void>;
  }

  export interface AccessToken {
    jti: string;
    accountId: string;
    clientId: string;
    grantId: string;
    aud?: string | string[];
    scope?: string;
    exp: number;
    /** The thumbprint of the key a DPoP-bound token is bound to (RFC 9449 `cnf.jkt`). */
    jkt?: string;
    readonly isExpired: boolean;
  }

  export interface TokenModel<T> {
    find(value: string, options?: { ignoreExpiration?: boolean }): Promise<T | undefined>;
    revokeByGrantId(grantId: string): Promise<void>;
  }

  export interface ProviderContext extends Koa.Context {
    oidc?: {
      result?: unknown;
      route?: string;
      params?: Record<string, unknown>;
      client?: ClientModel;
      entities?: Record<string, unknown>;
    };
  }

  export default class Provider extends Koa {
    constructor(issuer: string, configuration: Record<string, unknown>);
    readonly issuer: string;
    callback(): (req: IncomingMessage, res: ServerResponse) => Promise<void>;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<Interaction>;
    interactionFinished(req: IncomingMessage, res: ServerResponse, result: InteractionResult, options?: { mergeWithLastSubmission?: boolean }): Promise<void>;
    interactionResult(req: IncomingMessage, res: ServerResponse, result: InteractionResult, options?: { mergeWithLastSubmission?: boolean }): Promise<string>;
    readonly Grant: { new (init: { accountId: string; clientId: string }): Grant; find(id: string): Promise<Grant | undefined> };
    readonly Client: {
      find(id: string): Promise<ClientModel | undefined>;
      /** `compareClientSecret` is the documented hook for secrets stored other than in clear. */
      prototype: { compareClientSecret(this: { clientSecret?: string }, presented: string): boolean | Promise<boolean> };
    };
    readonly Interaction: { find(id: string): Promise<Interaction | undefined> };
    /** The browser's session from the `session` cookie; a new, unsaved one (no `accountId`) when there is none. */
    readonly Session: { get(ctx: Koa.Context): Promise<{ jti: string; accountId?: string }> };
    readonly AccessToken: TokenModel<AccessToken>;
    /** One-time values in the provider's storage: `unique` is false for a value seen before. */
    readonly ReplayDetection: { unique(iss: string, jti: string, exp: number): Promise<boolean> };
    readonly RefreshToken: TokenModel<unknown>;
    readonly AuthorizationCode: TokenModel<unknown>;
  }

  export const errors: {
    InvalidTarget: new (description?: string) => Error;
    InvalidRequest: new (description?: string) => Error;
    InvalidGrant: new (detail?: string) => Error & { error_description?: string };
    InvalidDpopProof: new (description?: string) => Error;
    AccessDenied: new (description?: string) => Error;
    InvalidClientMetadata: new (description?: string) => Error;
    InvalidRedirectUri: new (description?: string) => Error;
    OIDCProviderError: new (status: number, message: string) => Error & { status: number; error: string; error_description?: string };
  };
}

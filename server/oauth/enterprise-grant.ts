import { createHash } from 'node:crypto';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import { errors } from 'oidc-provider';
import type Provider from 'oidc-provider';
import type { ClientModel, ProviderContext } from 'oidc-provider';
import type { AuditRecorder } from '../audit/audit-log.js';
import type { EnterpriseIdpConfig } from '../config/oauth-server.js';
import { validUserId } from '../identity/user-id.js';
import { upstreamScope, upstreamsOfScope, type McpResources } from '../mcp/resources.js';
import type { ConsentStore } from '../store/store.js';
import { checkDpopProof, DpopProofError } from './dpop-proof.js';

/** The JWT bearer grant (RFC 7523 §2.1) that carries an ID-JAG. */
export const jwtBearerGrantType = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/** The `typ` of an Identity Assertion JWT Authorization Grant. */
const idJagType = 'oauth-id-jag+jwt';

/** Signature algorithms an enterprise IdP may sign an ID-JAG with: asymmetric only. */
const idJagAlgorithms = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

/** What the grant needs from the OAuth server being built. */
export interface EnterpriseGrantDeps {
  provider: Provider;
  issuer: string;
  idps: readonly EnterpriseIdpConfig[];
  resources: McpResources;
  /** Every configured upstream's name. */
  upstreams: readonly string[];
  mcpScope: string;
  accessTokenTtlSeconds: number;
  store: ConsentStore;
  audit: AuditRecorder;
}

type GrantError = Error & { error_description?: string };

/** `invalid_grant` (RFC 6749 §5.2) saying why; oidc-provider renders it as the token endpoint's JSON error. */
function invalidGrant(description: string): GrantError {
  return Object.assign(new errors.InvalidGrant(description), { error_description: description });
}

/**
 * Enterprise-Managed Authorization (`io.modelcontextprotocol/enterprise-managed-authorization`):
 * the token endpoint accepts the JWT bearer grant with an ID-JAG from a configured enterprise
 * IdP. The ID-JAG must verify under the IdP's JWKS, carry `typ` `oauth-id-jag+jwt`, the IdP as
 * `iss`, this server's issuer as `aud`, the authenticated client as `client_id`, one of the
 * gateway's MCP endpoints as `resource`, an `exp` in the future and a `jti` never seen before
 * (replays are refused across the fleet: the record is in the store). The IdP's decision stands
 * in for the approve screen: it is saved as the user's consent for the client (added to any
 * earlier one) and recorded in the audit trail with the IdP as actor. Upstreams the user has not
 * connected yet are asked for on first use, as after any consent.
 */
export function registerEnterpriseGrant(deps: EnterpriseGrantDeps): void {
  const { provider } = deps;
  const keySets = new Map(deps.idps.map((idp) => [idp.issuer, createRemoteJWKSet(new URL(idp.jwksUrl))]));
  const models = provider as unknown as {
    Grant: new (init: { accountId: string; clientId: string }) => { addOIDCScope(scope: string): void; addResourceScope(resource: string, scope: string): void; save(): Promise<string> };
    AccessToken: new (init: Record<string, unknown>) => { save(): Promise<string>; expiration: number; tokenType: string };
    ReplayDetection: { unique(iss: string, jti: string, exp: number): Promise<boolean> };
  };

  async function verify(assertion: string): Promise<JWTPayload & { iss: string }> {
    let issuer: unknown;
    try {
      if (decodeProtectedHeader(assertion).typ !== idJagType) throw invalidGrant(`the assertion is not an ID-JAG (typ must be ${idJagType})`);
      issuer = decodeJwt(assertion).iss;
    } catch (error) {
      if (error instanceof errors.InvalidGrant) throw error;
      throw invalidGrant('the assertion is not a JWT');
    }
    const keys = typeof issuer === 'string' ? keySets.get(issuer) : undefined;
    if (!keys) throw invalidGrant('the ID-JAG is not from a trusted enterprise IdP');
    try {
      const { payload } = await jwtVerify(assertion, keys, {
        issuer: issuer as string,
        audience: deps.issuer,
        typ: idJagType,
        algorithms: idJagAlgorithms,
        requiredClaims: ['exp', 'jti', 'sub', 'client_id'],
        clockTolerance: 30,
      });
      return payload as JWTPayload & { iss: string };
    } catch (error) {
      throw invalidGrant(`the ID-JAG does not verify: ${(error as Error).message}`);
    }
  }

  async function handle(ctx: ProviderContext): Promise<void> {
    const oidc = ctx.oidc as { params?: Record<string, unknown>; client?: ClientModel; body?: Record<string, unknown> };
    const client = oidc.client;
    const assertion = oidc.params?.['assertion'];
    if (!client) throw invalidGrant('no client');
    if (typeof assertion !== 'string' || !assertion) throw new errors.InvalidRequest('assertion is required');
    const jkt = await dpopKeyOf(ctx);
    const claims = await verify(assertion);
    if (claims['client_id'] !== client.clientId) throw invalidGrant('the ID-JAG was issued to another client');
    const resource = claims['resource'];
    if (typeof resource !== 'string' || !deps.resources.parse(resource)) throw invalidGrant('the ID-JAG names no resource of this gateway (/mcp or /mcp/<upstream>)');
    const asked = oidc.body?.['resource'];
    if (asked !== undefined && asked !== resource) throw invalidGrant('the ID-JAG was issued for another resource than the one asked for');
    const userId = validUserId(claims.sub);
    if (!userId) throw invalidGrant('the ID-JAG subject is not a usable user id');
    // Each ID-JAG once: kept until it would have expired anyway.
    if (!(await models.ReplayDetection.unique(`id-jag:${claims.iss}`, String(claims.jti), Number(claims.exp) + 30))) {
      throw invalidGrant('the ID-JAG was used before');
    }

    // What the IdP granted: the upstream scopes it names (those the resource allows), else
    // every upstream the resource reaches.
    const target = deps.resources.parse(resource)!;
    const allowed = new Set(deps.resources.upstreamScopesOf(resource));
    const named = upstreamsOfScope(typeof claims['scope'] === 'string' ? claims['scope'] : undefined).filter((name) => allowed.has(upstreamScope(name)));
    const upstreams = named.length > 0 ? named : target.kind === 'upstream' ? [target.upstream] : [...deps.upstreams];
    const scope = [deps.mcpScope, ...named.map(upstreamScope)].join(' ');

    const earlier = await deps.store.getConsent(userId, client.clientId);
    const reference = `id-jag:${createHash('sha256').update(`${claims.iss} ${String(claims.jti)}`).digest('base64url').slice(0, 22)}`;
    await deps.store.saveConsent({
      userId,
      clientId: client.clientId,
      upstreams: [...new Set([...(earlier?.upstreams ?? []), ...upstreams])],
      scopes: [deps.mcpScope],
      flowId: reference,
      grantedAt: new Date().toISOString(),
    });
    await deps.audit.record({ kind: 'consent.approved', userId, clientId: client.clientId, outcome: 'ok', sourceIp: ctx.ip || null, actor: `enterprise-idp:${claims.iss}` }, reference);

    const grant = new models.Grant({ accountId: userId, clientId: client.clientId });
    grant.addOIDCScope(deps.mcpScope);
    grant.addResourceScope(resource, scope);
    const grantId = await grant.save();
    const token = new models.AccessToken({
      accountId: userId,
      client,
      grantId,
      gty: jwtBearerGrantType,
      scope,
      aud: resource,
      expiresIn: deps.accessTokenTtlSeconds,
      resourceServer: { audience: resource, scope, accessTokenFormat: 'opaque' },
      ...(jkt ? { jkt } : {}),
    });
    const value = await token.save();
    ctx.body = { access_token: value, token_type: token.tokenType, expires_in: token.expiration, scope };
  }

  /**
   * The key a DPoP proof sent with the request binds the token to (RFC 9449 §5), as for the other
   * grants: `htm` POST, `htu` the token endpoint, each proof once. `undefined` without a proof.
   */
  async function dpopKeyOf(ctx: ProviderContext): Promise<string | undefined> {
    const proof = ctx.get('dpop');
    if (!proof) return undefined;
    try {
      const checked = await checkDpopProof(proof, { method: ctx.method, url: `${deps.issuer}${ctx.path}` });
      if (!(await models.ReplayDetection.unique(`dpop-token:${checked.jkt}`, checked.jti, Math.floor(Date.now() / 1000) + 120))) throw new DpopProofError('the DPoP proof was used before');
      return checked.jkt;
    } catch (error) {
      if (error instanceof DpopProofError) throw new errors.InvalidDpopProof(error.message);
      throw error;
    }
  }

  (provider as unknown as { registerGrantType(name: string, handler: (ctx: ProviderContext) => Promise<void>, params: string[]): void }).registerGrantType(
    jwtBearerGrantType,
    handle,
    ['assertion', 'scope', 'resource'],
  );
}

import { parseClientCredentials, requiredUrl, type UpstreamClientCredentials } from './client-credentials.js';
import type { UpstreamAuthKind } from './kind.js';

/**
 * Enterprise-Managed Authorization (the MCP extension `io.modelcontextprotocol/enterprise-managed-authorization`):
 * for a user signed in at the enterprise IdP (`oidc` identity mode), the gateway asks the IdP for an
 * Identity Assertion JWT Authorization Grant (ID-JAG) for the upstream (RFC 8693 token exchange)
 * and trades it at the upstream's authorization server for an access token (RFC 7523 JWT bearer
 * grant). The IdP's policy decides; no browser step, no connect link.
 */
export interface UpstreamEnterpriseConfig {
  type: 'enterprise';
  /** The upstream authorization server's issuer: the ID-JAG's audience. */
  issuer: string;
  /** Its token endpoint, where the ID-JAG is presented. */
  tokenEndpoint: string;
  /** Send `resource=<mcpUrl>` to the IdP and the authorization server (RFC 8707); on by default. */
  resource: boolean;
  /** The gateway's client at the upstream authorization server (the ID-JAG names it as `client_id`). */
  client: UpstreamClientCredentials;
}

/** `auth: { type: enterprise, issuer, tokenEndpoint, clientId, clientSecret?, authMethod?, resource? }`. */
export const enterpriseAuth: UpstreamAuthKind<UpstreamEnterpriseConfig> = {
  type: 'enterprise',
  perUserConnection: false,
  parse(entry, key, read) {
    return {
      type: 'enterprise',
      issuer: requiredUrl(entry, 'issuer', key, read, true),
      tokenEndpoint: requiredUrl(entry, 'tokenEndpoint', key, read),
      resource: entry.resource !== false,
      client: parseClientCredentials(entry, key, read),
    };
  },
};

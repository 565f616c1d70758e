import type { Client } from '@temporalio/client';
import type { AuditRecorder } from '../../audit/audit-log.js';
import type { GatewayConfig } from '../../config.js';
import type { TokenCipher } from '../../crypto/token-cipher.js';
import type { GatewayLimits } from '../../limits/gateway-limits.js';
import type { Logger } from '../../log.js';
import type { BrowserBinding } from '../../middleware/browser-binding.js';
import type { OAuthServer } from '../../oauth/provider.js';
import type { GatewayStore } from '../../store/store.js';

/** What the interaction routes need. */
export interface InteractionRouteDeps {
  /** Opens the sealed upstream authorization URLs the workflow prepared. */
  cipher: TokenCipher;
  config: GatewayConfig;
  oauth: OAuthServer;
  temporal: Client;
  store: GatewayStore;
  log: Logger;
  /** Ties each flow to the browser that opened it and checks the CSRF token of its POSTs. */
  binding: BrowserBinding;
  audit: AuditRecorder;
  /** The consent page's limits per address and client, and the cap on flows a client has pending. */
  limits: GatewayLimits;
}

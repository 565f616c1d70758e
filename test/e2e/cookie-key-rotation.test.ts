import { createHmac, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizationUrl, ConsentDriver, createPkce, registerClient } from '../helpers/consent-driver.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { temporalUnavailable } from '../helpers/temporal.js';

const oldKey = randomBytes(32).toString('base64url');
const newKey = randomBytes(32).toString('base64url');

describe.skipIf(Boolean(temporalUnavailable))('cookie key rotation', () => {
  let gateway: TestGateway;

  beforeAll(async () => {
    // Mid-rotation: the new key signs, the old one is still in the ring.
    gateway = await startTestGateway((config) => {
      config.oauth.cookieKeys = [newKey, oldKey];
    });
  });

  afterAll(async () => {
    await gateway?.close();
  });

  it('accepts the CSRF token of a consent page opened before the rotation, and still refuses a wrong one', async () => {
    const redirectUri = 'http://127.0.0.1:9/callback';
    const clientId = await registerClient(gateway.url, [redirectUri]);
    const driver = new ConsentDriver(gateway.url);
    const { uid, url, csrfToken } = await driver.start(authorizationUrl(gateway.url, { clientId, redirectUri, pkce: createPkce() }));
    const binding = driver.jar
      .header(url)
      .split('; ')
      .find((cookie) => cookie.startsWith(`cg_flow_${uid}=`))!
      .split('=')[1]!;
    const signedBefore = createHmac('sha256', oldKey).update(`csrf.${uid}.${binding}`).digest('base64url');
    expect(signedBefore).not.toBe(csrfToken);

    const wrong = await driver.post(uid, 'identity', { userId: 'rotation-user' }, { csrfToken: randomBytes(32).toString('base64url') });
    expect(wrong.status).toBe(403);
    const accepted = await driver.post(uid, 'identity', { userId: 'rotation-user' }, { csrfToken: signedBefore });
    expect(accepted.status).toBe(200);
  });
});

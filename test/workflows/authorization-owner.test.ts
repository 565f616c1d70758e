import { describe, expect, it } from 'vitest';
import { authorizationOwner, upstreamConnectFlowId } from '../../workflows/upstream-connect/messages.js';

describe('authorizationOwner', () => {
  it('reads a connect back from the owner id upstreamConnectFlowId gives it', () => {
    expect(authorizationOwner(upstreamConnectFlowId('Zx9_elicitation-1'))).toEqual({ kind: 'connect', connectId: 'Zx9_elicitation-1' });
  });

  it('reads an interaction uid as a consent flow', () => {
    expect(authorizationOwner('nUz0dT7xq3WkzL_a-9QfE')).toEqual({ kind: 'consent', flowId: 'nUz0dT7xq3WkzL_a-9QfE' });
  });
});

import { classifyInboundRequest } from '@modelcontextprotocol/server';
import fc from 'fast-check';
import type { Context } from 'koa';
import { describe, expect, it } from 'vitest';

import { isLegacy } from '../../../server/mcp/aggregate/request-guards.js';

const PROTOCOL_VERSION = 'io.modelcontextprotocol/protocolVersion';

/** The SDK's own answer for a POST with these headers and this parsed body. */
function sdkSaysLegacy(headers: Record<string, string>, body: unknown): boolean {
  return (
    classifyInboundRequest({
      httpMethod: 'POST',
      body,
      ...(headers['mcp-protocol-version'] !== undefined ? { protocolVersionHeader: headers['mcp-protocol-version'] } : {}),
      ...(headers['mcp-method'] !== undefined ? { mcpMethodHeader: headers['mcp-method'] } : {}),
      ...(headers['mcp-name'] !== undefined ? { mcpNameHeader: headers['mcp-name'] } : {}),
    }).kind === 'legacy'
  );
}

const contextWith = (headers: Record<string, string>) => ({ req: { headers } }) as unknown as Context;

const validEnvelope = {
  [PROTOCOL_VERSION]: '2026-07-28',
  'io.modelcontextprotocol/clientInfo': { name: 'c', version: '1' },
  'io.modelcontextprotocol/clientCapabilities': {},
};

/** A `_meta` object: the valid envelope, a broken one, one without the claim, or anything. */
const meta = fc.oneof(
  fc.constant(validEnvelope),
  fc.record({ [PROTOCOL_VERSION]: fc.oneof(fc.constantFrom('2026-07-28', '2025-11-25', '2099-01-01', ''), fc.jsonValue()) }),
  fc.dictionary(fc.constantFrom(PROTOCOL_VERSION, 'io.modelcontextprotocol/clientInfo', 'progressToken', 'x'), fc.jsonValue()),
  fc.jsonValue(),
);

const jsonrpc = fc.constantFrom('2.0', '2.0', '2.0', '2.0', '1.0', 2);
const id = fc.oneof(fc.integer(), fc.string({ maxLength: 4 }), fc.constant(null), fc.double(), fc.constantFrom(2 ** 53, -(2 ** 60), 1.5));
const method = fc.constantFrom('tools/call', 'tools/call', 'tools/list', 'initialize', 'notifications/initialized', 'ping', 5);
const params = fc.oneof(
  { weight: 4, arbitrary: fc.record({ name: fc.string({ maxLength: 4 }), arguments: fc.jsonValue({ maxDepth: 1 }), _meta: meta }, { requiredKeys: [] }) },
  { weight: 1, arbitrary: fc.record({ protocolVersion: fc.constantFrom('2025-11-25', '2026-07-28'), capabilities: fc.constant({}), _meta: meta }, { requiredKeys: ['protocolVersion'] }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);

/** Requests, notifications and responses as both eras send them, with their keys sometimes wrong, then any mix of keys. */
const message = fc.oneof(
  { weight: 4, arbitrary: fc.record({ jsonrpc, id, method, params }, { requiredKeys: ['jsonrpc', 'id', 'method'] }) },
  { weight: 2, arbitrary: fc.record({ jsonrpc, method, params }, { requiredKeys: ['jsonrpc', 'method'] }) },
  { weight: 1, arbitrary: fc.oneof(fc.record({ jsonrpc, id, result: fc.oneof(fc.record({ _meta: meta }), fc.jsonValue({ maxDepth: 1 })) }), fc.record({ jsonrpc, id, error: fc.record({ code: fc.integer(), message: fc.string({ maxLength: 4 }) }) })) },
  { weight: 1, arbitrary: fc.record({ jsonrpc, id, method, params, result: fc.jsonValue({ maxDepth: 1 }), error: fc.jsonValue({ maxDepth: 1 }) }, { requiredKeys: [] }) },
);

const body = fc.oneof({ weight: 8, arbitrary: message }, { weight: 1, arbitrary: fc.array(message, { maxLength: 3 }) }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) });

const headers = fc.record(
  {
    'mcp-protocol-version': fc.constantFrom('2026-07-28', '2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05', '2024-10-07', ' 2026-07-28 ', ' 2025-11-25', '2099-01-01', 'bogus', ''),
    'mcp-method': fc.constantFrom('tools/call', 'tools/list', 'initialize', 'ping'),
    'mcp-name': fc.string({ maxLength: 4 }),
  },
  { requiredKeys: [] },
);

describe("isLegacy (the /mcp endpoint's era decision)", () => {
  it("agrees with the SDK's classification on generated bodies and headers", () => {
    const seen = { legacy: 0, other: 0 };
    fc.assert(
      fc.property(headers, body, (sent, parsed) => {
        const legacy = sdkSaysLegacy(sent, parsed);
        seen[legacy ? 'legacy' : 'other'] += 1;
        expect(isLegacy(contextWith(sent), parsed)).toBe(legacy);
      }),
      { numRuns: 5000, seed: 20261201 },
    );
    // The generated traffic holds plenty of both answers.
    expect(seen.legacy).toBeGreaterThan(250);
    expect(seen.other).toBeGreaterThan(250);
  });

  it('agrees on the messages each era sends most', () => {
    const modernCall = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'a__b', arguments: {}, _meta: validEnvelope } };
    const modernHeaders = { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'a__b' };
    const cases: [Record<string, string>, unknown, boolean][] = [
      [modernHeaders, modernCall, false],
      [{ 'mcp-protocol-version': '2025-11-25' }, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'a__b', arguments: {} } }, true],
      [{}, { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'c', version: '1' } } }, true],
      [{ 'mcp-protocol-version': '2025-11-25' }, { jsonrpc: '2.0', method: 'notifications/initialized' }, true],
      // A response posted by a 2025-era client.
      [{ 'mcp-protocol-version': '2025-11-25' }, { jsonrpc: '2.0', id: 3, result: { _meta: validEnvelope } }, true],
      // An initialize whose claim is not a valid 2026-07-28 envelope is the legacy handshake.
      [{}, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', _meta: { [PROTOCOL_VERSION]: '2025-11-25' } } }, true],
      // A claim with a broken envelope is not legacy: the modern side refuses it.
      [modernHeaders, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x', _meta: { [PROTOCOL_VERSION]: 7 } } }, false],
    ];
    for (const [sent, parsed, legacy] of cases) {
      expect(sdkSaysLegacy(sent, parsed)).toBe(legacy);
      expect(isLegacy(contextWith(sent), parsed)).toBe(legacy);
    }
  });
});

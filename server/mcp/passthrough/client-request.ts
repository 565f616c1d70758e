import type { Context } from 'koa';

import { HEADER_MISMATCH, headerMismatch, isModernVersion, requestProtocolVersion, type JsonRpcMessageShape } from '../http-headers.js';
import { JSON_RPC_ERRORS } from '../json-rpc.js';
import { mcpMethodOf } from '../../metrics.js';
import { readPostBody } from '../request-guards.js';
import { gatewayRequestState } from './session-ids.js';

/** One client request to the single-upstream endpoint, as read. */
export interface ClientRequest {
  /** The POST body as received (rewritten when the gateway's own request state was lifted out). */
  body: Buffer | undefined;
  /** The POST body, parsed. */
  parsed: unknown;
  /** The body when it is one JSON-RPC message (not a batch). */
  message: JsonRpcMessageShape | undefined;
  /** That message's id, or null. */
  requestId: unknown;
}

/**
 * Reads the client's request: for a POST, its JSON body, refusing an MCP 2026-07-28 message whose
 * `Mcp-*` headers disagree with it (SEP-2243, 400 with `HEADER_MISMATCH`). Resolves `undefined`
 * when it answered the client itself.
 */
export async function readClientRequest(ctx: Context, maxBodyBytes: number): Promise<ClientRequest | undefined> {
  const request: ClientRequest = { body: undefined, parsed: undefined, message: undefined, requestId: null };
  if (ctx.method !== 'POST') return request;
  const read = await readPostBody(ctx, maxBodyBytes);
  if (!read) return undefined;
  request.body = read.raw;
  request.parsed = read.value;
  (ctx.state as { mcpMethod?: string | undefined }).mcpMethod = mcpMethodOf(request.parsed);
  if (read.value !== null && typeof read.value === 'object' && !Array.isArray(read.value)) {
    request.message = read.value as JsonRpcMessageShape;
    if (typeof request.message.id === 'string' || typeof request.message.id === 'number') request.requestId = request.message.id;
  }
  const { message, requestId } = request;
  const version = requestProtocolVersion(message, ctx.get('mcp-protocol-version'));
  if (message && isModernVersion(version)) {
    const mismatch = headerMismatch(message, { method: ctx.get('mcp-method'), name: ctx.get('mcp-name'), version: ctx.get('mcp-protocol-version') });
    if (mismatch) {
      ctx.status = 400;
      ctx.body = { jsonrpc: '2.0', error: { code: HEADER_MISMATCH, message: `Header mismatch: ${mismatch}` }, id: requestId };
      return undefined;
    }
  }
  return request;
}

/**
 * The client answers the gateway's own input request (a connect link): that state and its answers
 * are not the upstream's to see, so they are lifted out of `request`. False (after answering the
 * client) when the state was altered or issued to another user.
 */
export function liftGatewayState(ctx: Context, request: ClientRequest, verifyState: (state: string) => boolean): boolean {
  const answered = request.message ? gatewayRequestState(request.message) : undefined;
  if (!request.message || answered === undefined) return true;
  if (!verifyState(answered)) {
    ctx.status = 200;
    ctx.body = { jsonrpc: '2.0', error: { code: JSON_RPC_ERRORS.invalidParams, message: 'Invalid params: requestState was altered or belongs to another user' }, id: request.requestId };
    return false;
  }
  const { requestState: _state, inputResponses: _responses, ...params } = request.message.params ?? {};
  request.message = { ...request.message, params };
  request.body = Buffer.from(JSON.stringify(request.message));
  return true;
}

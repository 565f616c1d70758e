import type { Context } from 'koa';
import { InvalidRequestError } from '../errors.js';

/** What {@link readJsonBody} accepts. */
export interface JsonBodyOptions {
  /** The largest body, in bytes; a larger one is refused with `413` before it is all read. */
  limit: number;
}

/**
 * Reads the JSON object body of a page API request (the consent screens, My connections). An empty
 * body is `{}`. Anything but `application/json` is refused with `415`, so a cross-site form post never
 * gets this far; a body that is not a JSON object is refused with `400 invalid_request`. (The MCP
 * endpoints answer in JSON-RPC and read their bodies in `server/mcp/json-rpc.ts`.)
 */
export async function readJsonBody(ctx: Context, options: JsonBodyOptions): Promise<Record<string, unknown>> {
  if (!ctx.is('application/json')) throw new InvalidRequestError('send the body as application/json', { status: 415 });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > options.limit) throw new InvalidRequestError('the body is too large', { status: 413 });
    chunks.push(chunk);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  } catch {
    throw new InvalidRequestError('the body is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new InvalidRequestError('the body must be a JSON object');
  return parsed as Record<string, unknown>;
}

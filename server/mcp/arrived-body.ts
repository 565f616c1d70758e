import type { IncomingMessage } from 'node:http';

/**
 * The body of `message` when all of it has arrived and nothing has read it yet, taken at once
 * (a small request or answer usually comes whole with its headers); `undefined` when it is still
 * arriving or already being read, and the caller must wait for its stream events instead. Taking
 * it ends the stream as reading it to its end would.
 */
export function arrivedBody(message: IncomingMessage): Buffer | undefined {
  if (!message.complete || message.readableFlowing !== null || message.readableEncoding !== null) return undefined;
  const chunks: Buffer[] = [];
  for (let chunk: unknown = message.read(); chunk !== null; chunk = message.read()) chunks.push(chunk as Buffer);
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
}

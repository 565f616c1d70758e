/**
 * Where a forwarding process spends a call's time, read from Node's own HTTP diagnostics channels
 * (no change to the code measured): "before", from the client's request arriving (its headers
 * parsed) to the upstream request going out; "after", from the upstream's answer arriving (its
 * headers parsed) to the client's answer written; "upstream", what lies between: from the upstream
 * request going out to its answer's headers.
 *
 * Only calls that were alone in the process are counted (a call at concurrency 1), so each upstream
 * request belongs to the one client request in flight. Calls are grouped by path and protocol era.
 */
import { subscribe } from 'node:diagnostics_channel';
import { writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Phase times in µs per group (`<path> <era>`), as written to the file. */
export type PhaseTimes = Record<string, { before: number[]; upstream: number[]; after: number[] }>;

/** Records the phases of every call alone in this process; `write()` puts them in `file` as JSON. */
export function recordPhases(file: string): { write(): void } {
  const times: PhaseTimes = {};
  type Call = { group: string; arrived: number; sent?: number; answered?: number };
  const open = new Map<IncomingMessage, Call>();
  let current: Call | undefined;
  const groupOf = (request: IncomingMessage) => {
    const path = (request.url ?? '').split('?')[0]!;
    const version = request.headers['mcp-protocol-version'];
    return `${path.startsWith('/mcp/') || path === '/mcp' ? path : 'upstream'} ${version === '2026-07-28' ? '2026-07-28' : '2025-11-25'}`;
  };
  const group = (name: string) => (times[name] ??= { before: [], upstream: [], after: [] });
  subscribe('http.server.request.start', (message) => {
    const { request, response } = message as { request: IncomingMessage; response: ServerResponse };
    const call: Call = { group: groupOf(request), arrived: performance.now() };
    open.set(request, call);
    // A call that never finishes (its client went away) no longer counts as open.
    response.once('close', () => open.delete(request));
    current = open.size === 1 ? call : undefined;
  });
  subscribe('http.client.request.start', () => {
    if (!current || open.size !== 1) return;
    current.sent = performance.now();
    group(current.group).before.push((current.sent - current.arrived) * 1000);
  });
  subscribe('http.client.response.finish', () => {
    if (!current || open.size !== 1) return;
    current.answered = performance.now();
    if (current.sent !== undefined) group(current.group).upstream.push((current.answered - current.sent) * 1000);
  });
  subscribe('http.server.response.finish', (message) => {
    const { request } = message as { request: IncomingMessage; response: ServerResponse };
    const call = open.get(request);
    open.delete(request);
    if (call && call === current && call.answered !== undefined) group(call.group).after.push((performance.now() - call.answered) * 1000);
    if (call === current) current = undefined;
  });
  return { write: () => writeFileSync(file, JSON.stringify(times)) };
}

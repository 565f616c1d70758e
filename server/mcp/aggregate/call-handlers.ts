import { ProtocolError, ProtocolErrorCode, type Server } from '@modelcontextprotocol/server';
import * as z from 'zod';

import { JSON_RPC_ERRORS } from '../json-rpc.js';
import { createdTaskOf, TASKS_EXTENSION } from '../upstream-connections.js';
import type { AggregateHandlerOptions, AggregateScope } from './handlers.js';
import type { Item, UpstreamForwarder } from './upstream-forward.js';

const unavailableError = (text: string): never => {
  throw new ProtocolError(JSON_RPC_ERRORS.internalError, text);
};

/**
 * Registers on `server` the aggregate endpoint's calls (`tools/call`, `prompts/get`,
 * `resources/read`, `completion/complete`, and for MCP 2026-07-28 the MCP Tasks methods), each
 * routed to the upstream it names and its answer's names mapped back.
 */
export function registerCallHandlers(server: Server, scope: AggregateScope, options: AggregateHandlerOptions, routes: UpstreamForwarder): void {
  const { naming } = options;
  const { forward, namedTarget, resourceTarget } = routes;

  server.setRequestHandler('tools/call', async (request, ctx) => {
    // A 2025-11-25 `task` hint is tolerated and dropped: with MCP Tasks (SEP-2663) the upstream
    // alone decides whether a call becomes a task, for clients that declared the extension.
    const { name, task: _hint, ...params } = request.params as { name: string; task?: unknown } & Record<string, unknown>;
    const target = namedTarget('tool', name);
    const failed = (text: string): Item => ({ isError: true, content: [{ type: 'text', text }] });
    try {
      const result = await forward(target.upstream, 'tools/call', { ...params, name: target.name }, ctx, failed, true);
      const created = createdTaskOf(result);
      if (created && typeof created['taskId'] === 'string') return { ...created, taskId: naming.taskId(target.upstream, created['taskId']) } as never;
      return result as never;
    } catch (error) {
      // A declined or timed-out URL elicitation ends the call as a tool error, as before.
      if (error instanceof ProtocolError && error.code === JSON_RPC_ERRORS.invalidRequest) return failed(error.message) as never;
      throw error;
    }
  });

  server.setRequestHandler('prompts/get', async (request, ctx) => {
    const target = namedTarget('prompt', request.params.name);
    return (await forward(target.upstream, 'prompts/get', { ...request.params, name: target.name }, ctx, unavailableError, true)) as never;
  });

  server.setRequestHandler('resources/read', async (request, ctx) => {
    const target = resourceTarget(request.params.uri);
    const result = await forward(target.upstream, 'resources/read', { ...request.params, uri: target.uri }, ctx, unavailableError, true);
    if (!Array.isArray(result['contents'])) return result as never;
    const contents = (result['contents'] as unknown[]).map((content) =>
      typeof content === 'object' && content !== null && typeof (content as Item)['uri'] === 'string'
        ? { ...(content as Item), uri: naming.uri(target.upstream, (content as { uri: string }).uri) }
        : content,
    );
    return { ...result, contents } as never;
  });

  if (scope.era === 'modern') registerTaskHandlers(server, scope, options, routes);

  server.setRequestHandler('completion/complete', async (request, ctx) => {
    const { ref } = request.params;
    if (ref.type === 'ref/prompt') {
      const target = namedTarget('prompt', ref.name);
      return (await forward(target.upstream, 'completion/complete', { ...request.params, ref: { ...ref, name: target.name } }, ctx, unavailableError)) as never;
    }
    const target = resourceTarget(ref.uri);
    return (await forward(target.upstream, 'completion/complete', { ...request.params, ref: { ...ref, uri: target.uri } }, ctx, unavailableError)) as never;
  });
}

/** MCP Tasks (SEP-2663): each task id names its upstream, so any gateway process can route it. */
function registerTaskHandlers(server: Server, scope: AggregateScope, options: AggregateHandlerOptions, routes: UpstreamForwarder): void {
  const { naming } = options;
  const TaskParams = z.looseObject({ taskId: z.string() });
  for (const method of ['tasks/get', 'tasks/update', 'tasks/cancel'] as const) {
    server.setRequestHandler(method, { params: TaskParams }, async (params, ctx) => {
      const declared = (server.getClientCapabilities() as { extensions?: Record<string, unknown> } | undefined)?.extensions?.[TASKS_EXTENSION];
      if (declared === undefined) {
        throw new ProtocolError(ProtocolErrorCode.MissingRequiredClientCapability, 'Missing required client capability', {
          requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } },
        });
      }
      const target = naming.resolveTaskId(params.taskId, scope.caller().upstreams);
      if (!target) throw new ProtocolError(JSON_RPC_ERRORS.invalidParams, `Unknown task: ${params.taskId}`);
      // The SDK lifts `inputResponses` out of every request's params, as it would for a retry.
      const answers = method === 'tasks/update' ? { inputResponses: ctx.mcpReq.inputResponses ?? {} } : {};
      const result = await routes.forward(target.upstream, method, { ...params, ...answers, taskId: target.taskId }, ctx, unavailableError);
      return (typeof result['taskId'] === 'string' ? { ...result, taskId: naming.taskId(target.upstream, result['taskId']) } : result) as never;
    });
  }
}

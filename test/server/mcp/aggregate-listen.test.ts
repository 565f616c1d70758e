import { ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import type { McpCaller, McpUpstream } from '../../../server/mcp/endpoint.js';
import { startConformanceUpstream, type ConformanceUpstream } from '../../helpers/conformance-upstream.js';
import { startTasksUpstream, type TasksUpstream } from '../../helpers/tasks-upstream.js';
import { connectLegacy, connectModern, startGateway } from './aggregate-harness.js';

let conf: ConformanceUpstream;
let tk: TasksUpstream;
let confUpstream: McpUpstream;
let tkUpstream: McpUpstream;

beforeAll(async () => {
  [conf, tk] = await Promise.all([startConformanceUpstream({ name: 'conf' }), startTasksUpstream()]);
  confUpstream = { name: 'conf', displayName: 'Conformance', url: conf.url };
  tkUpstream = { name: 'tk', displayName: 'Tasks', url: tk.url };
});

afterAll(async () => {
  await Promise.all([conf?.close(), tk?.close()]);
});

/**
 * Alice's grant covers both upstreams (a client of hers granted `conf-only` covers `conf` alone),
 * Bob's only `tk`; each upstream request says whose credentials it carries.
 */
function startTwoUserGateway() {
  return startGateway((user, grant) => (user === 'bob' ? [tkUpstream] : grant === 'conf-only' ? [confUpstream] : [confUpstream, tkUpstream]), {
    upstreamHeaders: (caller: McpCaller) => ({ 'X-Upstream-User': caller.userId }),
  });
}

const tkListenersOf = (user: string) => tk.listeners().filter((listener) => listener.user === user);

describe('subscriptions/listen on /mcp (2026-07-28 client)', () => {
  it('gives each user the list changes of exactly the upstreams that user\'s grant covers, heard with that user\'s credentials', async () => {
    const { url } = await startTwoUserGateway();
    const heard = { alice: [] as string[], bob: [] as string[] };
    for (const user of ['alice', 'bob'] as const) {
      const client = await connectModern(url, user);
      for (const method of ['notifications/tools/list_changed', 'notifications/prompts/list_changed'] as const) {
        client.setNotificationHandler(method, () => void heard[user].push(method));
      }
      const subscription = await client.listen({ toolsListChanged: true, promptsListChanged: true });
      expect(subscription.honoredFilter).toEqual({ toolsListChanged: true, promptsListChanged: true });
    }
    expect(tkListenersOf('alice')).toHaveLength(1);
    expect(tkListenersOf('bob')).toHaveLength(1);

    const alice = await connectModern(url, 'alice');
    await alice.callTool({ name: 'conf__test_trigger_prompt_change', arguments: {} });
    await vi.waitFor(() => expect(heard.alice).toContain('notifications/prompts/list_changed'));
    tk.changeTools();
    await vi.waitFor(() => expect(heard.bob).toContain('notifications/tools/list_changed'));
    await vi.waitFor(() => expect(heard.alice).toContain('notifications/tools/list_changed'));
    // Bob's stream carries what it got in order: a prompt change relayed to it would have come first.
    expect(heard.bob).toEqual(['notifications/tools/list_changed']);
  });

  it('gives a stream only the upstreams of its own client\'s grant when one user\'s clients hold different grants', async () => {
    const { url } = await startTwoUserGateway();
    const heard = { narrow: [] as string[], wide: [] as string[] };
    for (const client of ['narrow', 'wide'] as const) {
      const connected = await connectModern(url, 'alice', {}, client === 'narrow' ? 'conf-only' : undefined);
      connected.setNotificationHandler('notifications/tools/list_changed', () => void heard[client].push('tk'));
      connected.setNotificationHandler('notifications/prompts/list_changed', () => void heard[client].push('conf'));
      await connected.listen({ toolsListChanged: true, promptsListChanged: true });
    }
    tk.changeTools();
    await vi.waitFor(() => expect(heard.wide).toEqual(['tk']));
    await (await connectModern(url, 'alice')).callTool({ name: 'conf__test_trigger_prompt_change', arguments: {} });
    await vi.waitFor(() => expect(heard.narrow).toEqual(['conf']));
    await vi.waitFor(() => expect(heard.wide).toEqual(['tk', 'conf']));
  });

  it('subscribes to a resource at its upstream and relays its updates under the gateway URI, and only for that URI', async () => {
    const { url } = await startTwoUserGateway();
    const client = await connectModern(url, 'alice');
    const updated: string[] = [];
    client.setNotificationHandler('notifications/resources/updated', (notification) => void updated.push(notification.params.uri));
    const subscription = await client.listen({ resourceSubscriptions: ['mcp-upstream://tk/tk://note/1', 'mcp-upstream://nowhere/x://y'] });
    expect(subscription.honoredFilter).toEqual({ resourceSubscriptions: ['mcp-upstream://tk/tk://note/1'] });
    expect(tkListenersOf('alice').map((listener) => listener.filter.resourceSubscriptions)).toContainEqual(['tk://note/1']);
    tk.touch('tk://note/2');
    tk.touch('tk://note/1');
    await vi.waitFor(() => expect(updated).toEqual(['mcp-upstream://tk/tk://note/1']));
  });

  it('closes the upstream listeners of a user when the last stream of that user goes away', async () => {
    const { url, endpoint } = await startTwoUserGateway();
    const first = await (await connectModern(url, 'alice')).listen({ toolsListChanged: true });
    const second = await (await connectModern(url, 'alice')).listen({ toolsListChanged: true });
    expect(endpoint.listenStreamCount()).toBe(2);
    expect(tkListenersOf('alice')).toHaveLength(1);
    await first.close();
    await vi.waitFor(() => expect(endpoint.listenStreamCount()).toBe(1));
    expect(tkListenersOf('alice')).toHaveLength(1);
    await second.close();
    await vi.waitFor(() => expect(tkListenersOf('alice')).toHaveLength(0));
    expect(endpoint.listenStreamCount()).toBe(0);
  });

  it('ends its streams gracefully when the endpoint closes', async () => {
    const { url, endpoint } = await startTwoUserGateway();
    const subscription = await (await connectModern(url, 'alice')).listen({ toolsListChanged: true });
    await endpoint.close();
    expect(await subscription.closed).toBe('graceful');
    await vi.waitFor(() => expect(tkListenersOf('alice')).toHaveLength(0));
  });
});

describe('resources/subscribe from a 2025 client to a 2026-07-28 upstream', () => {
  it('holds a subscriptions/listen stream filtered by the resource at the upstream and relays its updates under the gateway URI', async () => {
    const { url } = await startTwoUserGateway();
    const client = await connectLegacy(url, 'alice');
    const updated: string[] = [];
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (notification) => void updated.push(notification.params.uri));
    const resourceListeners = () => tkListenersOf('alice').filter((listener) => listener.filter.resourceSubscriptions !== undefined);

    await client.subscribeResource({ uri: 'mcp-upstream://tk/tk://note/1' });
    expect(resourceListeners().map((listener) => listener.filter)).toEqual([{ resourceSubscriptions: ['tk://note/1'] }]);
    tk.touch('tk://note/1');
    await vi.waitFor(() => expect(updated).toEqual(['mcp-upstream://tk/tk://note/1']));

    await client.unsubscribeResource({ uri: 'mcp-upstream://tk/tk://note/1' });
    await vi.waitFor(() => expect(resourceListeners()).toEqual([]));
  });

  it('answers -32601 with the request id when the upstream does not send updates of resources', async () => {
    const { url } = await startTwoUserGateway();
    const client = await connectLegacy(url, 'alice');
    const error = await client.subscribeResource({ uri: 'mcp-upstream://conf/test://watched-resource' }).catch((caught: unknown) => caught);
    expect((error as { code?: number }).code).toBe(-32601);
  });
});

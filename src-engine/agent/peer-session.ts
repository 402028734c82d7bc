// What a per-pair key may do (`agent dial-stdio --pair ID`, the forced command of its
// authorized_keys line): the shipping verbs of that one pair, into that pair's secondary and
// nothing else. The check runs in the dial-stdio process, in front of the agent: the remote
// side speaks the agent RPC to it, it serves only the allowed methods and relays them.

import { TidemarkError } from '../errors';
import type { RpcHandler, RpcMessage } from '../transport';
import type { AgentApi } from './agent-api';

/** Methods a peer key may call. `info` lets the peer check versions. */
const peerMethods = new Set(['info', 'volume.state', 'volume.write', 'volume.flush', 'volume.realize', 'stage.write', 'stage.apply']);
/** Methods that change the secondary: they must carry the pair's own auth (pairId; the agent checks its generation). */
const authMethods = new Set(['volume.write', 'volume.realize', 'stage.write', 'stage.apply']);

function refused(pairId: string, what: string): TidemarkError {
  return new TidemarkError(
    'PERMISSION',
    `this SSH key is restricted to replicating pair ${pairId} into its secondary: ${what} is refused`,
    'use your own login for anything else; the per-pair key only ships regions',
  );
}

/**
 * Wraps an agent's RPC handler so only `pairId`'s shipping reaches it. `agent` answers the
 * membership checks (a volume is served only while it is that pair's secondary).
 */
export function pairRestrictedHandler(inner: RpcHandler, agent: AgentApi, pairId: string): RpcHandler {
  /** Paths found to be the pair's secondary; checked again after a refusal, never trusted from the request alone. */
  const secondaries = new Set<string>();
  const checkPath = async (path: unknown): Promise<void> => {
    if (typeof path !== 'string') throw refused(pairId, 'a request without a volume path');
    if (secondaries.has(path)) return;
    const state = await agent.volumeState(path);
    if (!state.members.some((m) => m.pairId === pairId && m.role === 'secondary')) throw refused(pairId, `access to ${path}`);
    secondaries.add(path);
  };
  return (method, request, context) => {
    if (!peerMethods.has(method)) throw refused(pairId, `the agent method "${method}"`);
    if (context.streaming) throw refused(pairId, `a streamed ${method}`);
    const params = request.json as { path?: unknown; pairId?: unknown };
    if (authMethods.has(method) && params.pairId !== pairId) throw refused(pairId, `${method} without the pair's auth`);
    if (method === 'info') return inner(method, request, context);
    return (async (): Promise<RpcMessage> => {
      await checkPath(params.path);
      return (await inner(method, request, context)) as RpcMessage;
    })();
  };
}

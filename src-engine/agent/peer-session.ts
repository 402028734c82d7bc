// What a per-pair key may do (`agent dial-stdio --pair ID`, the forced command of its
// authorized_keys line): write and flush regions of that one pair's secondary, with the
// pair's auth at its current generation, and nothing else. The check runs in the dial-stdio
// process, in front of the agent: the remote side speaks the agent RPC to it; it serves only
// the allowed methods and relays them.
//
// Every request is checked afresh against the home's records, read from disk without opening
// the volume (asking the agent would make it open whatever path it is given): a pair deleted,
// failed over or moved to another generation refuses an SSH session that is still open.

import { join } from 'node:path';
import { TidemarkError } from '../errors';
import type { RpcHandler, RpcMessage } from '../transport';
import { readRecord } from '../store';
import { VolumeCatalog } from '../volume';
import { pairMemberKind } from './pair-members';

/** Methods a peer key may call: shipping needs region writes and a flush (`info` answers the version only). */
const peerMethods = new Set(['info', 'volume.write', 'volume.flush']);

function refused(pairId: string, what: string): TidemarkError {
  return new TidemarkError(
    'PERMISSION',
    `this SSH key is restricted to replicating pair ${pairId} into its secondary: ${what} is refused`,
    'use your own login for anything else; the per-pair key only ships regions',
  );
}

/** The pair's secondary member for `path` as the home records it, or null — nothing is opened. */
async function secondaryMember(catalog: VolumeCatalog, homeDir: string, path: string, pairId: string) {
  const record = await catalog.lookup(path).catch(() => undefined);
  if (!record) return null;
  const member = await readRecord(join(homeDir, 'volumes', record.volumeId, 'pairs', `${pairId}.json`), pairMemberKind).catch(() => undefined);
  return member?.role === 'secondary' ? member : null;
}

/**
 * Wraps an agent's RPC handler so only `pairId`'s shipping into its secondary reaches it.
 * `homeDir` is the agent's home (its records are read here, never written).
 */
export function pairRestrictedHandler(inner: RpcHandler, homeDir: string, pairId: string): RpcHandler {
  const catalog = new VolumeCatalog(homeDir);
  return (method, request, context) => {
    if (!peerMethods.has(method)) throw refused(pairId, `the agent method "${method}"`);
    if (context.streaming) throw refused(pairId, `a streamed ${method}`);
    if (method === 'info') return (async () => ({ json: { restrictedTo: pairId }, payload: new Uint8Array(0) }))();
    const params = request.json as { path?: unknown; pairId?: unknown; generation?: unknown };
    return (async (): Promise<RpcMessage> => {
      // One answer for every mismatch (no such file, not registered, another pair, not the secondary): nothing to learn.
      const denied = refused(pairId, `access to ${typeof params.path === 'string' ? params.path : 'that path'}`);
      if (typeof params.path !== 'string') throw denied;
      const member = await secondaryMember(catalog, homeDir, params.path, pairId);
      if (!member) throw denied;
      if (method === 'volume.write' && (params.pairId !== pairId || params.generation !== member.generation)) {
        throw refused(pairId, `a write without the pair's auth at generation ${member.generation}`);
      }
      return (await inner(method, request, context)) as RpcMessage;
    })();
  };
}

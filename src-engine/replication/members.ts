// What every replication run checks first: both agents record this pair, in the roles and at
// the generation the pair store says, and the secondary holds no unfinished image import.

import { TidemarkError } from '../errors';
import type { PairMember, VolumeState } from '../agent';
import type { PairEndpoints } from './endpoints';
import type { PairRecord } from './pair-store';

export interface CheckedMembers {
  readonly primaryState: VolumeState;
  readonly secondaryState: VolumeState;
  readonly primary: PairMember;
  readonly secondary: PairMember;
  /** The primary's last region may be short. */
  readonly lastRegionBytes: number;
}

/** `doing`: what the run is, for the hint ("syncing", "replicating"). */
export async function checkPairMembers(pair: PairRecord, endpoints: PairEndpoints, doing: string): Promise<CheckedMembers> {
  const [p, s] = await Promise.all([
    endpoints.primary.agent.volumeState(endpoints.primary.path),
    endpoints.secondary.agent.volumeState(endpoints.secondary.path),
  ]);
  const pm = p.members.find((m) => m.pairId === pair.pairId);
  const sm = s.members.find((m) => m.pairId === pair.pairId);
  for (const [member, side, endpoint] of [
    [pm, 'primary', endpoints.primary],
    [sm, 'secondary', endpoints.secondary],
  ] as const) {
    if (!member || member.role !== side) {
      throw new TidemarkError(
        'NOT_FOUND',
        `${endpoint.volref} on ${endpoint.where} is not the ${side} of pair "${pair.name}" (its agent has no record of it)`,
        `delete the pair and create it again, or check that ${endpoint.where} uses the same Tidemark home`,
      );
    }
    if (member.generation !== pair.generation) {
      throw new TidemarkError(
        'STALE',
        `pair "${pair.name}" is at generation ${pair.generation} here but ${member.generation} on ${endpoint.where}`,
        `a role change happened elsewhere; see \`tidemark pair show\` before ${doing}`,
      );
    }
  }
  if (s.importing) {
    throw new TidemarkError(
      'INCOMPLETE',
      `the secondary ${endpoints.secondary.volref} holds an unfinished image import (image ${s.importing.imageId}, at region ${s.importing.nextRegion})`,
      `finish it with \`tidemark image import DIR ${endpoints.secondary.volref}\` (it resumes), then sync`,
    );
  }
  return { primaryState: p, secondaryState: s, primary: pm!, secondary: sm!, lastRegionBytes: p.sizeBytes - (pm!.regionCount - 1) * pair.regionBytes };
}

/** RPC bytes of the endpoints' agents that count them (RpcAgent, RemoteHost), each agent once. */
export function wireBytesOf(endpoints: PairEndpoints): number {
  const agents = new Set<unknown>([endpoints.primary.agent, endpoints.secondary.agent]);
  let bytes = 0;
  for (const agent of agents) {
    const counter = (agent as { wireBytes?: () => number }).wireBytes;
    if (typeof counter === 'function') bytes += counter.call(agent);
  }
  return bytes;
}

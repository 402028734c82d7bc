// Direct shipping (docs/replication.md "Direct shipping"): provisioning a pair's own SSH key
// from its primary's host to its secondary's, and choosing the path a shipper uses.
//   pair link: the primary's agent makes the key (the private half stays there) and records
//   the secondary's address and the host key this orchestrator verified for it; the
//   secondary's agent puts the public half in authorized_keys, restricted to the pair's
//   shipping (`restrict,command="… agent dial-stdio --pair ID"`); a probe ships nothing
//   through the link, which connects and flushes the secondary, so a link that cannot work
//   is reported now rather than at the first batch.

import { TidemarkError } from '../errors';
import type { PeerStatus, PeerTarget } from '../agent';
import type { PairEndpoints } from './endpoints';
import type { PairRecord } from './pair-store';

/**
 * How a pair's regions travel: 'local', the primary is on this machine (read here, written
 * to the secondary: one hop); 'direct', the remote primary's agent writes them to the
 * secondary over the pair's key; 'relayed', a remote primary's regions come through this
 * machine (two hops).
 */
export type ShipPath = 'local' | 'direct' | 'relayed';

export interface LinkOptions {
  /** How the primary's host reaches the secondary's sshd, when not the way this machine does (a ProxyJump, NAT). */
  readonly address?: { readonly host: string; readonly port: number | null; readonly user: string | null };
}

export interface LinkResult {
  readonly pair: string;
  readonly target: string;
  readonly authorizedKeysPath: string;
  readonly status: PeerStatus;
}

/** True when both volumes are on remote hosts, and not the same one: the case a per-pair key is for. */
export function wantsDirectLink(endpoints: PairEndpoints): boolean {
  return Boolean(endpoints.primary.sshTarget && endpoints.secondary.sshTarget && endpoints.primary.where !== endpoints.secondary.where);
}

/** A new pair's step, for the CLI's `pair create` and the console's wizard alike: link a remote→remote pair, or say why shipping stays relayed. */
export async function linkAfterCreate(record: PairRecord, endpoints: PairEndpoints): Promise<{ linked: LinkResult | null; warning: string | null }> {
  if (!wantsDirectLink(endpoints)) return { linked: null, warning: null };
  try {
    return { linked: await linkPair(record, endpoints), warning: null };
  } catch (error) {
    return { linked: null, warning: `shipping of ${record.name} will be relayed through this machine: ${(error as Error).message}` };
  }
}

/** Provisions (or re-targets) the pair's key; throws with the reason when the link cannot work. */
export async function linkPair(record: PairRecord, endpoints: PairEndpoints, options: LinkOptions = {}): Promise<LinkResult> {
  const { primary, secondary } = endpoints;
  if (!primary.sshTarget) {
    throw new TidemarkError(
      'USAGE',
      `the primary of pair "${record.name}" is on this machine: its regions already go straight to the secondary`,
      'a per-pair key is for a primary on a remote host',
    );
  }
  if (!secondary.sshTarget) {
    throw new TidemarkError(
      'UNSUPPORTED',
      `the secondary of pair "${record.name}" is on this machine, which the primary's host would have to reach over SSH`,
      'keep the relayed path, or name the secondary by an SSH VOLREF this machine also answers to',
    );
  }
  const seen = await secondary.sshTarget();
  const target: PeerTarget = {
    host: options.address?.host ?? seen.host,
    port: options.address?.port ?? seen.port,
    user: options.address?.user ?? seen.user,
    secondaryPath: secondary.path,
    hostKeys: [seen.hostKey],
  };
  const { publicKey } = await primary.agent.peerKeyCreate(record.pairId, target);
  const { authorizedKeysPath } = await secondary.agent.peerAuthorize(record.pairId, publicKey);
  await primary.agent
    .peerShip(primary.path, record.pairId, [], { auth: { pairId: record.pairId, generation: record.generation } })
    .catch(async (error: unknown) => {
      // A key that cannot work must not be chosen as the path: removed from both sides.
      await unlinkPair(endpoints, record.pairId);
      throw new TidemarkError(
        'PERMISSION',
        `the primary's host (${primary.where}) cannot reach the secondary's agent at ${target.user}@${target.host}:${target.port} with the pair's key: ${(error as Error).message}`,
        'check that host reaches that address (else give --address), then run `tidemark pair link` again; shipping stays relayed meanwhile',
        { cause: error },
      );
    });
  return {
    pair: record.name,
    target: `${target.user}@${target.host}:${target.port}`,
    authorizedKeysPath,
    status: await primary.agent.peerStatus(record.pairId),
  };
}

/** Removes the pair's key from both hosts (what is unreachable is reported, the rest removed). */
export async function unlinkPair(endpoints: PairEndpoints, pairId: string): Promise<string[]> {
  const unreachable: string[] = [];
  for (const side of [endpoints.primary, endpoints.secondary]) {
    await side.agent.peerForget(pairId).catch(() => unreachable.push(side.where));
  }
  return unreachable;
}

/**
 * The path a shipper uses: local for a primary on this machine; direct when the remote
 * primary's agent holds the pair's key; relayed otherwise.
 */
export async function shipPathOf(endpoints: PairEndpoints, pairId: string): Promise<ShipPath> {
  if (!endpoints.primary.sshTarget) return 'local';
  const status = await endpoints.primary.agent.peerStatus(pairId).catch(() => undefined);
  return status?.configured ? 'direct' : 'relayed';
}

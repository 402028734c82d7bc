// A consistency group's replication (`tidemark replicate GROUP`, the console's group runs): its
// cycles one after another at the group's interval — the shortest of its members' — or one
// with `once`, every member pair's lock held throughout. A cycle cut by a dropped link, a
// restarting agent, a full secondary or a group hold lost before its commit resumes from the
// group's cursor with backoff, as a pair's cycles do (replicate.ts); one that cannot go on (a
// member failed over) ends the run.

import { assert } from '../assert';
import { TidemarkError } from '../errors';
import type { EndpointResolver } from './endpoints';
import { retryable } from './continuous';
import { GroupHoldLost, GroupStore, runGroupCycle, withPairLocks, type GroupCycleOptions, type GroupCycleSummary, type GroupRecord } from './groups';
import type { PairStore } from './pair-store';
import { replicateLockTask, withCycleRetries } from './replicate';
import { sleepMs } from './sync/conveyor';

export interface GroupReplicateOptions extends Pick<GroupCycleOptions, 'signal' | 'limitRateBytesPerSecond' | 'onProgress'> {
  /** One cycle, then return; else cycles until the signal aborts (which rejects with CANCELLED). */
  readonly once: boolean;
  readonly onCycle?: (cycle: GroupCycleSummary) => void;
  readonly onWarning?: (message: string) => void;
  /** Attempts per cycle (default: 8 with `once`, unbounded otherwise). */
  readonly attemptsMax?: number;
}

/** Runs the group's cycles with every member pair locked. */
export async function replicateGroup(
  store: PairStore,
  resolver: EndpointResolver,
  group: GroupRecord,
  options: GroupReplicateOptions,
): Promise<{ readonly group: string; readonly cycles: readonly GroupCycleSummary[] }> {
  const groups = new GroupStore(store.homeDir);
  const members = await Promise.all(group.pairs.map((name) => store.require(name)));
  assert(members.length > 0, 'a group has members');
  const intervalMs = Math.min(...members.map((m) => m.intervalMs));
  const cycles: GroupCycleSummary[] = [];
  return withPairLocks(store, group.pairs, replicateLockTask, async () => {
    for (;;) {
      const startMs = performance.now();
      await checkUnchanged(groups, group);
      const what = `cycle of group ${group.name}`;
      const cycle = await withCycleRetries({ ...options, what, retryable: groupCycleRetryable }, () =>
        runGroupCycle({ store, groups, group, resolver, ...options }),
      );
      // A group cycle refuses failed-over members: one that finished is the cycle a group failback owed, if one did.
      await groups.setFailbackOwed(group.name, false);
      cycles.push(cycle);
      if (cycles.length > 100) cycles.shift();
      options.onCycle?.(cycle);
      if (options.once) return { group: group.name, cycles };
      await sleepMs(Math.max(0, intervalMs - (performance.now() - startMs)), options.signal);
    }
  });
}

/** One group cycle with every member pair's lock held (`replicate GROUP --once`, the close of a group failback). */
export async function runGroupCycleOnce(
  store: PairStore,
  resolver: EndpointResolver,
  group: GroupRecord,
  options: Pick<GroupReplicateOptions, 'signal' | 'limitRateBytesPerSecond' | 'onProgress' | 'onWarning'> = {},
): Promise<GroupCycleSummary> {
  const { cycles } = await replicateGroup(store, resolver, group, { ...options, once: true });
  return cycles[0]!;
}

/** A pair cycle's retryable failures, and a group hold that ended before its commit (it took nothing). */
function groupCycleRetryable(error: unknown): boolean {
  return retryable(error) || error instanceof GroupHoldLost;
}

/** The group as this run was given it, still: it may have been deleted or made anew before this run took the member locks (group create and delete take them too, so not after). */
async function checkUnchanged(groups: GroupStore, group: GroupRecord): Promise<void> {
  const now = await groups.get(group.name);
  if (now && now.createdAt === group.createdAt && now.pairs.join('\n') === group.pairs.join('\n')) return;
  throw new TidemarkError(
    'STALE',
    now ? `group ${group.name} was made anew (${now.pairs.join(', ')}) since this run started` : `group ${group.name} was deleted since this run started`,
    now ? `start the group's replication again` : 'its pairs replicate on their own again: start them one by one',
  );
}

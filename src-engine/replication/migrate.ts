// Planned migration (seed 004, docs/failover.md "Migrate"): a lossless role swap.
//  1. drain while applications still write: replicate until in sync (continuous) or run a cycle
//     (periodic), so what is left for the pause is small;
//  2. the pause: demote the primary (locked at g+1: its writes stop, EPERM on its exports), and
//     take what it still had unshipped — its tracking's OOS ∪ in flight at the lock, or for a
//     periodic pair its current ∪ next maps;
//  3. copy those regions into the secondary (still locked at g: the pair's auth), flush it, and
//     verify both sides by signature — any difference aborts before a role changes on it;
//  4. promote the secondary at g+1 (no failback map is kept: nothing diverged) and swap the
//     roles in the record; the old primary is the new secondary, in sync.
// The pause (2–4) is measured and reported.

import { Bitset, runsOf } from '../bitmap';
import { TidemarkError, isTidemarkError } from '../errors';
import { failbackMapName } from '../agent';
import type { EndpointResolver, PairEndpoints } from './endpoints';
import { roleEvent } from './failover';
import { checkNotGrouped } from './groups';
import { checkPairMembers } from './members';
import type { PairRecord, PairStore } from './pair-store';
import { currentMapName } from './periodic';
import { replicatePair } from './replicate';
import { acquirePairLock } from './sync/lock';
import { sinceMapName } from './sync/names';
import { verifyPair } from './sync/verify';

export interface MigrateSummary {
  readonly pair: string;
  readonly newPrimary: string;
  readonly oldPrimary: string;
  readonly generation: number;
  /** Shipped while applications still wrote. */
  readonly drainedRegions: number;
  /** Copied during the pause: what the primary had unshipped when its writes stopped. */
  readonly finalRegions: number;
  readonly bytesTransferred: number;
  /** From the primary's writes stopping to the new primary taking writes. */
  readonly pauseMs: number;
  readonly durationMs: number;
}

/** How long the drain may run before the pause starts (a writer may keep a pair from ever being in sync). */
const drainMsDefault = 10_000;

export async function migratePair(store: PairStore, resolver: EndpointResolver, name: string, options: { drainMs?: number } = {}): Promise<MigrateSummary> {
  const startMs = performance.now();
  let record = await store.require(name);
  if (record.failover) throw new TidemarkError('USAGE', `pair "${name}" is failed over`, `run \`tidemark failback ${name}\` first`);
  if (record.mode === 'periodic') await checkNotGrouped(store, record);
  const endpoints: PairEndpoints = { primary: await resolver.resolve(record.primary.volref), secondary: await resolver.resolve(record.secondary.volref) };
  await checkPairMembers(record, endpoints, 'migrating');
  const drained = await drain(store, record, endpoints, options.drainMs ?? drainMsDefault);
  record = await store.require(name);
  const lock = await acquirePairLock(store.pairDir(name), name, 'migrate');
  try {
    const pauseStartMs = performance.now();
    const final = await stopPrimary(record, endpoints);
    const bytes = await copyFinal(record, endpoints, final);
    const verified = await verifyPair(record, endpoints);
    if (verified.regionsDiffering > 0) {
      await restorePrimary(store, record, endpoints, final);
      throw new TidemarkError(
        'IO',
        `migrate of ${name} stopped before the swap: ${verified.regionsDiffering} regions differ after the final copy`,
        `${record.primary.volref} is the primary again (generation ${record.generation + 2}) with those regions marked to ship; investigate with \`tidemark verify ${name}\`, then \`tidemark replicate ${name}\``,
      );
    }
    const generation = record.generation + 1;
    const { secondary } = endpoints;
    await releaseProtection(record, endpoints);
    // A periodic primary records what its next cycle ships from its promotion on (created while still locked).
    if (record.mode === 'periodic') await secondary.agent.bitmapCreate(secondary.path, sinceMapName(record.pairId));
    await secondary.agent.pairRoleChange(secondary.path, record.pairId, roleEvent('primary', generation, 'migrate'));
    await secondary.agent.bitmapDelete(secondary.path, failbackMapName(record.pairId)).catch(() => undefined); // nothing diverged
    const pauseMs = Math.round(performance.now() - pauseStartMs);
    await store.update(name, { generation, primary: record.secondary, secondary: record.primary });
    return {
      pair: name,
      newPrimary: record.secondary.volref,
      oldPrimary: record.primary.volref,
      generation,
      drainedRegions: drained.regionsTransferred,
      finalRegions: final.length,
      bytesTransferred: drained.bytesTransferred + bytes,
      pauseMs,
      durationMs: Math.round(performance.now() - startMs),
    };
  } finally {
    await lock.release();
  }
}

/** Ships while applications write, until in sync (a periodic pair: one cycle) or the budget runs out; what is left is copied in the pause. */
async function drain(
  store: PairStore,
  record: PairRecord,
  endpoints: PairEndpoints,
  budgetMs: number,
): Promise<{ regionsTransferred: number; bytesTransferred: number }> {
  const budget = new AbortController();
  const timer = setTimeout(() => budget.abort(), budgetMs);
  let shippedRegions = 0;
  let shippedBytes = 0;
  try {
    const summary = await replicatePair({
      store,
      pair: record,
      endpoints,
      once: true,
      signal: budget.signal,
      onProgress: (p) => ((shippedRegions = p.regionsTransferred), (shippedBytes = p.bytesTransferred)),
    });
    return summary;
  } catch (error) {
    if (!budget.signal.aborted || !isTidemarkError(error) || error.code !== 'CANCELLED') throw error;
    return { regionsTransferred: shippedRegions, bytesTransferred: shippedBytes };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A drain cut short by its budget leaves the catch-up's protective snapshot on the secondary.
 * Verified equal to the stopped primary, the secondary is consistent now: the snapshot goes —
 * a promotion would otherwise roll the volume back to it.
 */
async function releaseProtection(record: PairRecord, endpoints: PairEndpoints): Promise<void> {
  const { secondary } = endpoints;
  const member = (await secondary.agent.volumeState(secondary.path)).members.find((m) => m.pairId === record.pairId);
  const snapshotId = member?.protectSnapshotId;
  if (!snapshotId) return;
  await secondary.agent.pairUpdate(secondary.path, record.pairId, { protectSnapshotId: null });
  await secondary.agent.snapshotDelete(secondary.path, snapshotId).catch(() => undefined);
}

/**
 * A migrate that cannot verify: the old primary becomes the primary again (at g+2, the
 * secondary too), with the regions of the pause marked unshipped so replication sends them.
 */
async function restorePrimary(store: PairStore, record: PairRecord, endpoints: PairEndpoints, final: readonly number[]): Promise<void> {
  const generation = record.generation + 2;
  const { primary, secondary } = endpoints;
  await secondary.agent.pairRoleChange(secondary.path, record.pairId, roleEvent('secondary', generation, 'migrate'));
  await primary.agent.pairRoleChange(primary.path, record.pairId, roleEvent('primary', generation, 'migrate'));
  await primary.agent.bitmapDelete(primary.path, failbackMapName(record.pairId)).catch(() => undefined);
  if (record.mode === 'continuous' && final.length > 0) await primary.agent.trackingMark(primary.path, record.pairId, final);
  if (record.mode === 'periodic') {
    await primary.agent.bitmapCreate(primary.path, sinceMapName(record.pairId)).catch(() => undefined);
    if (final.length > 0) await primary.agent.bitmapMark(primary.path, sinceMapName(record.pairId), final);
  }
  await store.update(record.name, { generation });
}
async function stopPrimary(record: PairRecord, endpoints: PairEndpoints): Promise<number[]> {
  const { primary } = endpoints;
  const result = await primary.agent.pairRoleChange(primary.path, record.pairId, roleEvent('secondary', record.generation + 1, 'migrate'));
  if (record.mode === 'continuous') return [...(result.unshippedRegions ?? [])];
  const maps = await primary.agent.bitmapList(primary.path);
  const names = [sinceMapName(record.pairId), currentMapName(record.pairId)].filter((n) => maps.some((m) => m.name === n));
  const bits = await Promise.all(names.map(async (n) => primary.agent.bitmapRead(primary.path, n)));
  const union = bits.length > 0 ? Bitset.union(...bits.map((b) => new Bitset(b.regionCount, b.words))) : null;
  for (const n of names) await primary.agent.bitmapDelete(primary.path, n);
  return union ? [...union.indexes()] : [];
}

/** Copies the final regions into the (still locked) secondary with the pair's old auth, then flushes it. */
async function copyFinal(record: PairRecord, endpoints: PairEndpoints, regions: readonly number[]): Promise<number> {
  const { primary, secondary } = endpoints;
  const auth = { pairId: record.pairId, generation: record.generation };
  let bytes = 0;
  for (const [first, count] of runsOf(regions)) {
    for await (const { regionIndex, data } of primary.agent.readRegions(primary.path, first, count)) {
      await secondary.agent.writeRegion(secondary.path, regionIndex, data, { auth });
      bytes += data.length;
    }
  }
  await secondary.agent.flush(secondary.path);
  return bytes;
}

// A pair's region maps by name — oos, moos, in-flight (the primary's tracking), current and
// next (a periodic primary's change maps), failback (a promoted primary's) and resync (what
// failback copies now) — read from the primary's agent. One table for `tidemark map` and the
// console's map inspector.

import { failbackMapName, type BitmapContents, type TrackingMapKind } from '../agent';
import { TidemarkError } from '../errors';
import { currentMapName, resyncMapOf, sinceMapName, type PairEndpoints, type PairRecord, type VolumeEndpoint } from '../replication';

export type PairMapSource = (primary: VolumeEndpoint, record: PairRecord, endpoints: () => Promise<PairEndpoints>) => Promise<BitmapContents>;

const trackingMap =
  (kind: TrackingMapKind): PairMapSource =>
  (primary, record) =>
    primary.agent.trackingMap(primary.path, record.pairId, kind);

/** What a pair of this mode and state has, for the hint of a map it lacks. */
export function pairMapHint(record: PairRecord): string {
  if (record.failover) return 'after a failover: failback and resync (and oos, moos, in-flight)';
  return record.mode === 'periodic' ? 'a periodic pair has current and next (and oos, moos, in-flight)' : 'a continuous pair has oos, moos and in-flight';
}

/** A change map the primary keeps for the pair (periodic current/next, a new primary's failback map). */
const changeMap =
  (nameOf: (pairId: string) => string, what: string): PairMapSource =>
  async (primary, record) => {
    const name = nameOf(record.pairId);
    if (!(await primary.agent.bitmapList(primary.path)).some((m) => m.name === name)) {
      throw new TidemarkError('NOT_FOUND', `pair ${record.name} has no ${what} map on ${primary.volref}`, pairMapHint(record));
    }
    return primary.agent.bitmapRead(primary.path, name);
  };

/** What `failback` would copy now (failed-over pairs only). */
const resyncMap: PairMapSource = async (_primary, record, endpoints) => {
  if (!record.failover) throw new TidemarkError('NOT_FOUND', `pair ${record.name} has not failed over: it has no resync map`, pairMapHint(record));
  const { map } = await resyncMapOf(record, await endpoints());
  return { regionCount: map.bitCount, setCount: map.popcount(), words: map.words };
};

/** Every map a pair may have, in help order: adding one (failback, current, next, resync) is one line. */
export const pairMapSources: Readonly<Record<string, PairMapSource>> = {
  oos: trackingMap('oos'),
  moos: trackingMap('moos'),
  'in-flight': trackingMap('in-flight'),
  current: changeMap(currentMapName, 'current'),
  next: changeMap(sinceMapName, 'next'),
  failback: changeMap(failbackMapName, 'failback'),
  resync: resyncMap,
};
export const pairMapNames: readonly string[] = Object.keys(pairMapSources);

/** USAGE unless `which` names one of the maps above. */
export function requirePairMapName(which: string | undefined): string {
  if (which === undefined) throw new TidemarkError('USAGE', 'map NAME needs --which', `add --which ${pairMapNames.join('|')}`);
  if (!Object.hasOwn(pairMapSources, which)) throw new TidemarkError('USAGE', `unknown map "${which}"`, `use one of ${pairMapNames.join(', ')}`);
  return which;
}

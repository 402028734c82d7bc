// A pair's timeline for the console (docs/console.md "Pair timeline"): its creation, both
// members' role changes (generation, event, which volume became what, by whom — the same
// history `pair show` merges), the last sync, a failover not yet failed back, and the periodic
// cycles applied (the pair's durable cycle history, whoever ran them); oldest first.

import type { CycleEntry, PairStatus } from '../replication';

export type TimelineKind = 'created' | 'sync' | 'role' | 'failover' | 'cycle';

export interface TimelineEntry {
  readonly atMs: number;
  readonly kind: TimelineKind;
  /** The pair's generation the entry belongs to (null when not recorded with one). */
  readonly generation: number | null;
  /** One line a person reads: what happened. */
  readonly title: string;
  /** The volume it happened to, when it is about one. */
  readonly volref: string | null;
  /** Who asked (user@host of the orchestrator), when recorded. */
  readonly by: string | null;
}

export interface PairTimeline {
  readonly pair: string;
  readonly generation: number;
  readonly entries: readonly TimelineEntry[];
  /** Members whose history could not be read (unreachable), by VOLREF with why. */
  readonly unreachable: readonly { readonly volref: string; readonly error: string }[];
}

const roleEventTitles: Record<string, string> = {
  failover: 'failover',
  'failover-forced': 'forced failover',
  failback: 'failback',
  migrate: 'migrate',
};

export function pairTimeline(status: PairStatus, cycles: readonly CycleEntry[]): PairTimeline {
  const { record } = status;
  const entries: TimelineEntry[] = [
    {
      atMs: Date.parse(record.createdAt),
      kind: 'created',
      generation: 1,
      // The record names the current roles: the direction at creation is known only while nothing changed them.
      title:
        record.generation === 1
          ? `pair created: ${record.primary.volref} → ${record.secondary.volref}`
          : `pair created between ${record.primary.volref} and ${record.secondary.volref} (their roles changed since)`,
      volref: null,
      by: null,
    },
  ];
  // A failover's role events are recorded by each member it reached: one entry per member, so a
  // side that was unreachable at the time shows no event at that generation.
  for (const side of [status.primary, status.secondary]) {
    for (const e of side.member?.history ?? []) {
      entries.push({
        atMs: e.atMs,
        kind: 'role',
        generation: e.generation,
        title: `${roleEventTitles[e.event] ?? e.event}: ${side.volref} became ${e.role}`,
        volref: side.volref,
        by: e.by,
      });
    }
  }
  if (record.failover) {
    const f = record.failover;
    entries.push({
      atMs: f.atMs,
      kind: 'failover',
      generation: f.fromGeneration + 1,
      title: `failed over${f.forced ? ' (forced)' : ''}, not failed back yet: ${
        f.phase === 'seeded'
          ? `failback copying ${f.resyncRegions ?? '?'} regions`
          : f.oldPrimaryDemoted
            ? 'the old primary was demoted'
            : 'the old primary was not reached'
      }`,
      volref: record.primary.volref,
      by: null,
    });
  }
  if (record.lastSync) {
    entries.push({
      atMs: Date.parse(record.lastSync.finishedAt),
      kind: 'sync',
      generation: record.lastSync.generation,
      title: `last sync finished (${record.lastSync.method}), point in time ${record.lastSync.pointInTime}`,
      volref: record.secondary.volref,
      by: null,
    });
  }
  for (const c of cycles) {
    entries.push({
      atMs: c.finishedAtMs,
      kind: 'cycle',
      generation: null,
      title: `${c.group ? `group ${c.group} ` : ''}cycle ${c.cycle} applied: ${c.regionsTransferred} regions, point in time ${c.pointInTime}`,
      volref: record.secondary.volref,
      by: c.by,
    });
  }
  entries.sort((a, b) => a.atMs - b.atMs || (a.generation ?? 0) - (b.generation ?? 0));
  const unreachable = [status.primary, status.secondary].filter((s) => !s.reachable).map((s) => ({ volref: s.volref, error: s.error ?? 'unreachable' }));
  return { pair: record.name, generation: record.generation, entries, unreachable };
}

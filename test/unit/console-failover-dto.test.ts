// The console's failover result: exactly the DTO's fields (the engine's `forced`, `failbackMap`
// and `groupFailover` stay on the host), and a group failover as the group's name, the pairs it
// promoted and those rolled forward from the group cycle's seal.
import { describe, expect, it } from 'vitest';
import type { FailoverSummary, GroupFailoverSummary } from '../../src-engine';
import { toFailoverDto } from '../../src-main/console-service';

function summary(pair: string, extra: Partial<FailoverSummary> = {}): FailoverSummary {
  return {
    pair,
    newPrimary: `/d/${pair}-b.img`,
    oldPrimary: `/d/${pair}-a.img`,
    generation: 2,
    forced: true,
    oldPrimaryReachable: false,
    atRiskRegions: null,
    rolledBackRegions: 0,
    failbackMap: `failback-${pair}`,
    group: null,
    durationMs: 12,
    ...extra,
  };
}

describe('toFailoverDto', () => {
  it('an ungrouped pair: the DTO fields only, group null', () => {
    expect(toFailoverDto({ ...summary('field'), groupFailover: null })).toStrictEqual({
      pair: 'field',
      newPrimary: '/d/field-b.img',
      oldPrimary: '/d/field-a.img',
      generation: 2,
      oldPrimaryReachable: false,
      atRiskRegions: null,
      rolledBackRegions: 0,
      group: null,
      durationMs: 12,
    });
  });

  it('a grouped pair: the group, the pairs promoted, the pairs rolled forward; not the members’ summaries', () => {
    const members = [summary('db-data', { group: 'db' }), summary('db-logs', { group: 'db', rolledBackRegions: 3 })];
    const groupFailover: GroupFailoverSummary = {
      group: 'db',
      rolledForward: [{ pair: 'db-logs', cycle: 7 }],
      abandonedCycle: false,
      members,
      durationMs: 90,
    };
    const dto = toFailoverDto({ ...members[1]!, groupFailover });
    expect(dto).toStrictEqual({
      pair: 'db-logs',
      newPrimary: '/d/db-logs-b.img',
      oldPrimary: '/d/db-logs-a.img',
      generation: 2,
      oldPrimaryReachable: false,
      atRiskRegions: null,
      rolledBackRegions: 3,
      group: { name: 'db', pairs: ['db-data', 'db-logs'], rolledForward: [{ pair: 'db-logs', cycle: 7 }], abandonedCycle: false },
      durationMs: 12,
    });
  });
});

// The role-history verdict on reconnect (src-engine/replication/reconcile.ts): every case of
// two members' roles and generations, and the last-write time separating behind from split brain.
import { describe, expect, it } from 'vitest';
import { reconcileMembers, reconciliationText, type MemberView } from '../../src-engine/replication';
import type { RoleEvent } from '../../src-engine/agent';

const event = (generation: number, role: RoleEvent['role'], atMs: number): RoleEvent => ({ generation, role, event: 'failover-forced', atMs, by: 'test@host' });
const view = (volref: string, role: 'primary' | 'secondary', generation: number, extra: Partial<MemberView> & { history?: RoleEvent[] } = {}): MemberView => ({
  volref,
  member: { role, generation, history: extra.history ?? [] },
  lastWriteAtMs: extra.lastWriteAtMs ?? null,
});

describe('reconcileMembers', () => {
  it('one primary and one secondary at the same generation are in step, either order', () => {
    const expected = { verdict: 'in-step', primary: 'a', secondary: 'b', generation: 3 };
    expect(reconcileMembers(view('a', 'primary', 3), view('b', 'secondary', 3))).toEqual(expected);
    expect(reconcileMembers(view('b', 'secondary', 3), view('a', 'primary', 3))).toEqual(expected);
  });

  it('a secondary at an older generation is behind; one at a later generation than the primary is unknown', () => {
    expect(reconcileMembers(view('a', 'primary', 4), view('b', 'secondary', 2))).toEqual({
      verdict: 'behind',
      primary: 'a',
      behind: 'b',
      generation: 4,
      behindGeneration: 2,
    });
    expect(reconcileMembers(view('a', 'primary', 2), view('b', 'secondary', 3))).toMatchObject({
      verdict: 'unknown',
      reason: expect.stringMatching(/did not reach a/),
    });
  });

  it('two primaries: the older generation is behind unless written after the other was promoted', () => {
    const promoted = view('b', 'primary', 2, { history: [event(2, 'primary', 1_000)] });
    expect(reconcileMembers(view('a', 'primary', 1, { lastWriteAtMs: 999 }), promoted)).toEqual({
      verdict: 'behind',
      primary: 'b',
      behind: 'a',
      generation: 2,
      behindGeneration: 1,
    });
    expect(reconcileMembers(view('a', 'primary', 1), promoted)).toMatchObject({ verdict: 'behind' }); // never written
    const split = reconcileMembers(view('a', 'primary', 1, { lastWriteAtMs: 1_001 }), promoted);
    expect(split).toEqual({ verdict: 'split-brain', primary: 'b', other: 'a', generation: 2, promotedAtMs: 1_000, otherLastWriteAtMs: 1_001 });
    expect(reconciliationText(split)).toMatch(/^SPLIT BRAIN: b is primary at generation 2 .* but a was written as primary after that/);
  });

  it('the promotion instant is the latest primary event at the member’s generation', () => {
    const history = [event(2, 'primary', 100), event(3, 'secondary', 200), event(4, 'primary', 300)];
    const b = view('b', 'primary', 4, { history });
    expect(reconcileMembers(view('a', 'primary', 3, { lastWriteAtMs: 250 }), b)).toMatchObject({ verdict: 'behind' });
    expect(reconcileMembers(view('a', 'primary', 3, { lastWriteAtMs: 301 }), b)).toMatchObject({ verdict: 'split-brain', promotedAtMs: 300 });
  });

  it('a decision instant given by the caller wins over the event stamp, and the write time’s uncertainty counts as later', () => {
    const promoted = view('b', 'primary', 2, { history: [event(2, 'primary', 1_000)] });
    // The failover decided at 900 (before its hand-over and promotion, stamped 1 000): a write at 950 came after it.
    expect(reconcileMembers(view('a', 'primary', 1, { lastWriteAtMs: 950 }), promoted)).toMatchObject({ verdict: 'behind' });
    expect(reconcileMembers(view('a', 'primary', 1, { lastWriteAtMs: 950 }), promoted, { decidedAtMs: 900 })).toMatchObject({ verdict: 'split-brain' });
    // 990 ± 20 may be after 1 000: doubt is a split brain, never a silent resync.
    const doubtful = { ...view('a', 'primary', 1, { lastWriteAtMs: 990 }), lastWriteUncertaintyMs: 20 };
    expect(reconcileMembers(doubtful, promoted)).toMatchObject({ verdict: 'split-brain' });
    expect(reconcileMembers({ ...doubtful, lastWriteUncertaintyMs: 5 }, promoted)).toMatchObject({ verdict: 'behind' });
  });

  it('two primaries at one generation are a split brain; two secondaries have no primary; a missing member is unknown', () => {
    expect(reconcileMembers(view('a', 'primary', 2), view('b', 'primary', 2))).toMatchObject({ verdict: 'split-brain' });
    expect(reconcileMembers(view('a', 'secondary', 2), view('b', 'secondary', 1))).toEqual({ verdict: 'no-primary', generation: 2 });
    expect(reconcileMembers({ volref: 'a', member: null }, view('b', 'primary', 1))).toEqual({
      verdict: 'unknown',
      reason: 'a is unreachable or has no record of the pair',
    });
  });
});

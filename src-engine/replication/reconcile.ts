// What two members' role histories say when the orchestrator reaches both again (issue 8,
// docs/failover.md "Generations and history"), like DRBD comparing data-generation UUIDs on
// connect: in step, one side behind (so the resync direction is known), split brain, or no
// primary. The higher generation is the later decision: a primary at a lower generation missed
// a role change (it was away when the other was promoted). Whether it was written after that
// promotion is what separates "behind" from "split brain"; its tracker's durable last-write time
// answers it (the histories record decisions, not writes).

import type { PairMember } from '../agent';

export interface MemberView {
  readonly volref: string;
  /** Null: unreachable, or not a member. */
  readonly member: Pick<PairMember, 'role' | 'generation' | 'history'> | null;
  /** When its tracker last acknowledged a write (a primary's), if known, on the comparing clock. */
  readonly lastWriteAtMs?: number | null;
  /** ± how far lastWriteAtMs may be off (the measured clock offset's uncertainty); any doubt counts as later. */
  readonly lastWriteUncertaintyMs?: number;
}

export interface ReconcileOptions {
  /**
   * The instant the decision in force was taken, when known better than the promotion event's
   * stamp: a failover's instant is taken before its hand-over and promotion (failback uses it too).
   */
  readonly decidedAtMs?: number | null;
}

export type Reconciliation =
  | { readonly verdict: 'in-step'; readonly primary: string; readonly secondary: string; readonly generation: number }
  /** `behind` missed role changes up to `generation`: resync from `primary` to it (its own unshipped writes join the map). */
  | { readonly verdict: 'behind'; readonly primary: string; readonly behind: string; readonly generation: number; readonly behindGeneration: number }
  | {
      readonly verdict: 'split-brain';
      readonly primary: string;
      readonly other: string;
      readonly generation: number;
      /** When `primary` was promoted at `generation` (its history), if recorded. */
      readonly promotedAtMs: number | null;
      /** When `other` was last written as a primary. */
      readonly otherLastWriteAtMs: number | null;
    }
  | { readonly verdict: 'no-primary'; readonly generation: number }
  | { readonly verdict: 'unknown'; readonly reason: string };

/** The instant `member` became primary at its current generation, from its history. */
export function promotedAtMs(member: Pick<PairMember, 'role' | 'generation' | 'history'>): number | null {
  const event = [...(member.history ?? [])].reverse().find((e) => e.role === 'primary' && e.generation === member.generation);
  return event?.atMs ?? null;
}

export function reconcileMembers(a: MemberView, b: MemberView, options: ReconcileOptions = {}): Reconciliation {
  const missing = [a, b].find((v) => v.member === null);
  if (missing) return { verdict: 'unknown', reason: `${missing.volref} is unreachable or has no record of the pair` };
  const [x, y] = [a, b] as [MemberView & { member: NonNullable<MemberView['member']> }, MemberView & { member: NonNullable<MemberView['member']> }];
  const primaries = [x, y].filter((v) => v.member.role === 'primary');
  if (primaries.length === 0) return { verdict: 'no-primary', generation: Math.max(x.member.generation, y.member.generation) };
  if (primaries.length === 1) {
    const p = primaries[0]!;
    const s = p === x ? y : x;
    if (s.member.generation === p.member.generation) return { verdict: 'in-step', primary: p.volref, secondary: s.volref, generation: p.member.generation };
    if (s.member.generation < p.member.generation) {
      return { verdict: 'behind', primary: p.volref, behind: s.volref, generation: p.member.generation, behindGeneration: s.member.generation };
    }
    return {
      verdict: 'unknown',
      reason: `the secondary ${s.volref} is at generation ${s.member.generation}, later than the primary ${p.volref} (${p.member.generation}): a role change did not reach ${p.volref}`,
    };
  }
  // Both primary: the later generation is the decision in force.
  const [hi, lo] = x.member.generation >= y.member.generation ? [x, y] : [y, x];
  const promoted = options.decidedAtMs ?? promotedAtMs(hi.member);
  const lastWrite = lo.lastWriteAtMs ?? null;
  const wroteAfter = lastWrite !== null && (promoted === null || lastWrite + (lo.lastWriteUncertaintyMs ?? 0) > promoted);
  if (hi.member.generation === lo.member.generation || wroteAfter) {
    return {
      verdict: 'split-brain',
      primary: hi.volref,
      other: lo.volref,
      generation: hi.member.generation,
      promotedAtMs: promoted,
      otherLastWriteAtMs: lastWrite,
    };
  }
  return { verdict: 'behind', primary: hi.volref, behind: lo.volref, generation: hi.member.generation, behindGeneration: lo.member.generation };
}

/** One line for `pair show`. */
export function reconciliationText(r: Reconciliation): string {
  const when = (ms: number | null) => (ms === null ? 'an unrecorded time' : new Date(ms).toISOString());
  switch (r.verdict) {
    case 'in-step':
      return `in step at generation ${r.generation}: ${r.primary} → ${r.secondary}`;
    case 'behind':
      return `${r.behind} is behind (generation ${r.behindGeneration}, the pair is at ${r.generation}): resync from ${r.primary} to it`;
    case 'split-brain':
      return `SPLIT BRAIN: ${r.primary} is primary at generation ${r.generation} (promoted ${when(r.promotedAtMs)}), but ${r.other} was written as primary after that (${when(r.otherLastWriteAtMs)})`;
    case 'no-primary':
      return `no primary: both sides are secondaries at generation ${r.generation}`;
    case 'unknown':
      return `unknown: ${r.reason}`;
  }
}

// Holds of a two-phase group snapshot (docs/replication.md "Consistency groups"): a consistency
// group whose primaries are on several hosts freezes by holding every host's members' writes
// (prepare) before any host takes its snapshots (commit). LocalAgent's group snapshot chain
// enters the holds; this file keeps each hold's lease and the decision the chain waits for once
// every member is held — commit, abort, or the lease running out (an abort) — and remembers how
// recent holds ended, so a late commit is told why it is refused.

import { randomUUID } from 'node:crypto';
import { assert } from '../assert';
import { groupHoldLeaseMsMax, groupHoldsEndedRemembered } from '../constants';
import { TidemarkError } from '../errors';
import type { SnapshotGroupHold, SnapshotInfo } from './agent-api';

const holdIdPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function checkHoldId(holdId: string): void {
  if (!holdIdPattern.test(holdId)) throw new TidemarkError('USAGE', `"${holdId.slice(0, 64)}" is not a group hold id`, 'pass the holdId prepare returned');
}

export function checkLeaseMs(leaseMs: number): void {
  if (!Number.isSafeInteger(leaseMs) || leaseMs < 1 || leaseMs > groupHoldLeaseMsMax) {
    throw new TidemarkError('USAGE', `a group hold lease of ${leaseMs} ms is outside 1..${groupHoldLeaseMsMax} ms`, 'ask for a lease within the bounds');
  }
}

type Decision = 'commit' | 'abort' | 'expired';
type Chain = (atHeld: () => Promise<void>) => Promise<SnapshotInfo[]>;

class GroupHold {
  readonly holdId = randomUUID();
  heldAtMs: number | undefined;
  decided: Decision | undefined;
  /** The chain's outcome: the snapshots once committed; set by `run`. */
  result: Promise<SnapshotInfo[]> = Promise.resolve([]);
  /** Resolves on commit, rejects on abort or expiry: what the chain's innermost level waits for. */
  private readonly decision: Promise<void>;
  private settle!: { resolve: () => void; reject: (error: TidemarkError) => void };
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly leaseMs: number,
    onExpiry: (hold: GroupHold) => void,
  ) {
    this.decision = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    this.decision.catch(() => undefined); // observed by the chain once it is held; not before
    this.timer = setTimeout(() => onExpiry(this), leaseMs);
    this.timer.unref(); // a process with nothing else pending has no one left to commit: the hold ends with it
  }

  decide(decision: Decision, error?: TidemarkError): void {
    assert(this.decided === undefined, `group hold ${this.holdId} is decided once`);
    this.decided = decision;
    clearTimeout(this.timer);
    if (decision === 'commit') this.settle.resolve();
    else this.settle.reject(error!);
  }

  /** Runs `chain`; resolves once every member is held, rejects if it fails first or the hold is decided against first. */
  run(chain: Chain): Promise<SnapshotGroupHold> {
    return new Promise<SnapshotGroupHold>((resolve, reject) => {
      this.result = chain(() => {
        if (this.decided === undefined) {
          this.heldAtMs = Date.now();
          resolve({ holdId: this.holdId, heldAtMs: this.heldAtMs });
        }
        return this.decision;
      });
      this.result.catch(reject); // after `resolve`, a no-op: commit and abort report it
      this.decision.catch(reject); // a lease that ran out while the holds were entered fails prepare at once
    });
  }
}

interface Ended {
  readonly how: 'committed' | 'aborted' | 'expired';
  readonly leaseMs: number;
}

/** One agent's group holds: live ones by id, and how the last few ended. */
export class GroupHolds {
  private readonly live = new Map<string, GroupHold>();
  private readonly ended = new Map<string, Ended>();

  /** Starts a hold whose lease runs from now, entered by `chain` (see GroupHold.run). */
  async prepare(leaseMs: number, chain: Chain): Promise<SnapshotGroupHold> {
    checkLeaseMs(leaseMs);
    const hold = new GroupHold(leaseMs, (h) => h.decided === undefined && h.decide('expired', expiredError(h.holdId, h.leaseMs)));
    this.live.set(hold.holdId, hold);
    const held = hold.run(chain);
    void hold.result.then(
      () => this.end(hold),
      () => this.end(hold),
    );
    return held;
  }

  /** Decides the hold as commit and returns its snapshots; EXPIRED or NOT_FOUND when it cannot be. */
  async commit(holdId: string): Promise<SnapshotInfo[]> {
    checkHoldId(holdId);
    const hold = this.live.get(holdId);
    if (!hold || hold.decided !== undefined) throw this.refusal(holdId, hold);
    assert(hold.heldAtMs !== undefined, `group hold ${holdId} is committed only once prepared`);
    hold.decide('commit');
    return hold.result;
  }

  /** Decides the hold as abort and waits until its writes resume; nothing for an unknown or decided hold. */
  async abort(holdId: string): Promise<void> {
    checkHoldId(holdId);
    const hold = this.live.get(holdId);
    if (!hold) return;
    if (hold.decided === undefined) hold.decide('abort', abortedError(holdId));
    // Once held, released means the chain unwound; one still entering stops at its innermost level.
    if (hold.heldAtMs !== undefined)
      await hold.result.then(
        () => undefined,
        () => undefined,
      );
  }

  /** Aborts every live hold (the agent is closing its volumes). */
  async abortAll(): Promise<void> {
    await Promise.all([...this.live.keys()].map((holdId) => this.abort(holdId)));
  }

  private end(hold: GroupHold): void {
    if (hold.decided === undefined) {
      assert(hold.heldAtMs === undefined, `group hold ${hold.holdId} ends undecided only if it failed while entered`);
      hold.decide('abort', abortedError(hold.holdId)); // stops the lease
    }
    this.live.delete(hold.holdId);
    this.ended.set(hold.holdId, { how: endedHow(hold.decided!), leaseMs: hold.leaseMs });
    while (this.ended.size > groupHoldsEndedRemembered) this.ended.delete(this.ended.keys().next().value!);
  }

  private refusal(holdId: string, live: GroupHold | undefined): TidemarkError {
    const ended: Ended | undefined = live ? { how: endedHow(live.decided!), leaseMs: live.leaseMs } : this.ended.get(holdId);
    if (ended?.how === 'expired') return expiredError(holdId, ended.leaseMs);
    const why = ended ? `was ${ended.how} already` : 'is unknown to this agent (it restarted, or the hold ended long ago)';
    return new TidemarkError('NOT_FOUND', `group hold ${holdId} ${why}: nothing to commit`, 'the group cycle is retried: it prepares a new hold');
  }
}

const endedHow = (decision: Decision): Ended['how'] => (decision === 'commit' ? 'committed' : decision === 'expired' ? 'expired' : 'aborted');

function expiredError(holdId: string, leaseMs: number): TidemarkError {
  return new TidemarkError(
    'EXPIRED',
    `group hold ${holdId} was released with nothing taken: its lease of ${leaseMs} ms ran out before the commit`,
    'the group cycle is retried; if it keeps expiring, the link to a host is slower than the lease allows',
  );
}

function abortedError(holdId: string): TidemarkError {
  return new TidemarkError('CANCELLED', `group hold ${holdId} was aborted: nothing taken`, 'the group cycle is retried');
}

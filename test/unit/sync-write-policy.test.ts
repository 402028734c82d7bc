// SyncWritePolicy: when small writes may run on the event loop's thread. Times are given, not
// measured: the policy is a function of the write durations it is told about.
import { describe, expect, it } from 'vitest';
import {
  SyncWritePolicy,
  syncWriteBackoffMaxMs,
  syncWriteBackoffMinMs,
  syncWriteStallLongMs,
  syncWriteStallMs,
  syncWriteStallMsPerMiB,
  syncWriteStallRepeatMs,
} from '../../src-engine/volume/sync-write-policy';

/** Reports a synchronous write of `durationMs` at `atMs`; returns when writes may be synchronous again. */
function writeAt(policy: SyncWritePolicy, atMs: number, durationMs: number, bytes = 4096): number {
  expect(policy.maySyncWrite(atMs)).toBe(true);
  policy.wrote(atMs, atMs + durationMs, bytes);
  let resumeMs = atMs + durationMs;
  while (!policy.maySyncWrite(resumeMs)) resumeMs += 1;
  return resumeMs;
}

describe('SyncWritePolicy', () => {
  it('keeps writing synchronously while writes are fast', () => {
    const policy = new SyncWritePolicy();
    for (let t = 0; t < 1000; t += 1) expect(writeAt(policy, t, syncWriteStallMs)).toBe(t + syncWriteStallMs);
    expect(policy.stats).toEqual({ syncWrites: 1000, stalls: 0, backoffs: 0 });
  });

  it('gives a larger write the time its copy takes: a 1 MiB write may take 1 ms longer than a 4 KiB one', () => {
    const policy = new SyncWritePolicy();
    const MiB = 1_048_576;
    const slowCopyMs = syncWriteStallMs + syncWriteStallMsPerMiB; // no stall for 1 MiB, a stall for 4 KiB
    writeAt(policy, 100, slowCopyMs, MiB);
    writeAt(policy, 110, slowCopyMs, MiB);
    expect(policy.stats).toEqual({ syncWrites: 2, stalls: 0, backoffs: 0 });
    writeAt(policy, 120, slowCopyMs, 4096);
    expect(policy.stats).toEqual({ syncWrites: 3, stalls: 1, backoffs: 0 });
    writeAt(policy, 130, slowCopyMs + 0.5, MiB); // beyond its allowance, soon after a stall: back off
    expect(policy.stats).toEqual({ syncWrites: 4, stalls: 2, backoffs: 1 });
  });

  it('takes a lone stall as a hiccup: the next write is synchronous', () => {
    const policy = new SyncWritePolicy();
    expect(writeAt(policy, 100, 15)).toBe(115);
    expect(writeAt(policy, 115 + syncWriteStallRepeatMs + 1, 15)).toBe(115 + syncWriteStallRepeatMs + 16); // the next stall is not soon after
    expect(policy.stats).toEqual({ syncWrites: 2, stalls: 2, backoffs: 0 });
  });

  it('backs off briefly on a second stall soon after one, then writes synchronously again', () => {
    const policy = new SyncWritePolicy();
    writeAt(policy, 100, 5);
    expect(writeAt(policy, 105 + syncWriteStallRepeatMs, 5)).toBe(110 + syncWriteStallRepeatMs + syncWriteBackoffMinMs);
    expect(policy.maySyncWrite(110 + syncWriteStallRepeatMs + syncWriteBackoffMinMs - 1)).toBe(false);
    expect(policy.stats).toEqual({ syncWrites: 2, stalls: 2, backoffs: 1 });
  });

  it('doubles the back-off while every write stalls, up to its bound, and starts short after a quiet spell', () => {
    const policy = new SyncWritePolicy();
    const backoffs: number[] = [];
    let t = 0;
    while (backoffs.length < 10) {
      const resumeMs = writeAt(policy, t, 10); // the kernel throttles: every synchronous write stalls
      if (resumeMs > t + 10) backoffs.push(resumeMs - (t + 10));
      t = resumeMs;
    }
    expect(backoffs).toEqual(backoffs.map((_, i) => Math.min(syncWriteBackoffMaxMs, syncWriteBackoffMinMs * 2 ** i)));
    expect(backoffs.at(-1)).toBe(syncWriteBackoffMaxMs);
    expect(policy.stats.stalls).toBe(backoffs.length + 1); // one blocked write per back-off, and the first lone one
    t = writeAt(policy, t + 5 * syncWriteBackoffMaxMs, 1); // quiet: a fast write
    t = writeAt(policy, t + 10, 10);
    expect(writeAt(policy, t + 10, 10)).toBe(t + 20 + syncWriteBackoffMinMs);
  });

  it('backs off at once on one long stall: writes spaced out under throttling still leave the thread', () => {
    const policy = new SyncWritePolicy();
    let t = 0;
    for (let i = 0; i < 5; i++) {
      const resumeMs = writeAt(policy, t, syncWriteStallLongMs + 70); // a client writing every ~300 ms, each write held
      expect(resumeMs).toBeGreaterThan(t + syncWriteStallLongMs + 70);
      t = resumeMs + 300;
    }
    expect(policy.stats.backoffs).toBe(5);
  });
});

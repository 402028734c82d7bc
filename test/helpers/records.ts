// Numbered records for periodic-replication tests (as test/integration/periodic.test.ts uses
// them): record n goes to region n·stride mod regionCount, stamped with n; a writer issues 1,
// 2, … one at a time, each awaiting its acknowledgement. A volume then holds "the primary after
// records 1..m" for some m — a cycle boundary — or it is a mix, which `prefixHeld` names. With
// stride 1 the writer sweeps the regions in the order a copy reads them, so a copy read live
// (not from a snapshot) that outpaces the writer still looks like a prefix; a stride coprime
// with the region count makes consecutive records land far apart, and such a copy a mix.
import { expect } from 'vitest';
import type { AgentApi } from '../../src-engine/agent';

export class NumberedRecords {
  constructor(
    readonly regionBytes: number,
    readonly regionCount: number,
    readonly stride = 1,
  ) {
    let a = stride;
    let b = regionCount;
    while (b) [a, b] = [b, a % b];
    if (a !== 1) throw new Error(`stride ${stride} must be coprime with ${regionCount} regions`);
  }

  /** The region record n goes to. */
  regionOf(n: number): number {
    return (n * this.stride) % this.regionCount;
  }

  /** Record n: stamped with n and filled with a byte derived from it. */
  record(n: number): Buffer {
    const data = Buffer.alloc(this.regionBytes, (n * 31 + 7) & 0xff);
    data.writeUInt32LE(n, 0);
    data.writeUInt32LE(n ^ 0x5a5a5a5a, 4);
    return data;
  }

  /** The m such that `bytes` is the volume after records 1..m (fails the test naming the first region that breaks it). */
  prefixHeld(bytes: Buffer, what = 'volume'): number {
    const { regionBytes, regionCount } = this;
    let m = 0;
    const found: number[] = [];
    for (let i = 0; i < regionCount; i++) {
      const region = bytes.subarray(i * regionBytes, (i + 1) * regionBytes);
      const n = region.readUInt32LE(0);
      if (n !== 0) {
        expect(region.equals(this.record(n)), `${what}: region ${i} holds a whole record`).toBe(true);
        expect(this.regionOf(n), `${what}: record ${n} in region ${i}`).toBe(i);
      } else expect(region.equals(Buffer.alloc(regionBytes)), `${what}: region ${i} never written`).toBe(true);
      found.push(n);
      m = Math.max(m, n);
    }
    // After records 1..m, region i holds the latest n ≤ m going to it (one in any regionCount consecutive n), or nothing.
    const latest = new Array<number>(regionCount).fill(0);
    for (let n = m; n >= Math.max(1, m - regionCount + 1); n--) latest[this.regionOf(n)] ||= n;
    for (let i = 0; i < regionCount; i++) {
      expect(found[i], `${what}: region ${i} after record ${m} holds ${latest[i] ? latest[i] : 'nothing'}`).toBe(latest[i]);
    }
    return m;
  }
}

/** Writes records acked+1, acked+2, … through `agent`, one at a time, each awaited; stops at the first failure (kept). */
export class RecordWriter {
  acked: number;
  failure: unknown;
  private stopped = false;
  private running: Promise<void> | undefined;

  constructor(
    private readonly agent: AgentApi,
    private readonly path: string,
    private readonly records: NumberedRecords,
    private readonly random: () => number,
    startAfter = 0,
  ) {
    this.acked = startAfter;
  }

  start(): void {
    this.stopped = false;
    this.running = (async () => {
      while (!this.stopped) {
        const n = this.acked + 1;
        try {
          await this.agent.writeRegion(this.path, this.records.regionOf(n), this.records.record(n));
        } catch (error) {
          this.failure = error;
          return;
        }
        this.acked = n;
        if (this.random() < 0.3) await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
  }

  /** Stops after the write under way; throws the failure that stopped it, if any. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
    if (this.failure !== undefined) throw this.failure;
  }
}

/**
 * Numbered records across the two volumes of a consistency group: record n goes to volume
 * n mod 2, region ⌊n/2⌋ mod regionCount, stamped with n. The writer alternates volumes, so a
 * pair of secondaries frozen at two different instants shows a later record on one without an
 * earlier one on the other.
 */
export class GroupRecords {
  constructor(
    readonly regionBytes: number,
    readonly regionCount: number,
  ) {}

  volumeOf(n: number): number {
    return n % 2;
  }

  regionOf(n: number): number {
    return Math.floor(n / 2) % this.regionCount;
  }

  record(n: number): Buffer {
    const data = Buffer.alloc(this.regionBytes, (n * 13 + 1) & 0xff);
    data.writeUInt32LE(n, 0);
    return data;
  }

  /** The m such that the two volumes are exactly the state after records 1..m (fails the test naming the first region that breaks it). */
  prefixHeld(volumes: readonly Buffer[]): number {
    const { regionBytes, regionCount } = this;
    const found = volumes.map((bytes) => Array.from({ length: regionCount }, (_, i) => bytes.readUInt32LE(i * regionBytes)));
    const m = Math.max(...found.flat());
    for (const [v, regions] of found.entries()) {
      for (const [i, n] of regions.entries()) {
        if (n !== 0) expect(volumes[v]!.subarray(i * regionBytes, (i + 1) * regionBytes).equals(this.record(n))).toBe(true);
        let latest = 0;
        for (let k = m; k >= 1 && k > m - 2 * regionCount; k--) {
          if (this.volumeOf(k) === v && this.regionOf(k) === i) {
            latest = k;
            break;
          }
        }
        expect(n, `volume ${v} region ${i} after record ${m}`).toBe(latest);
      }
    }
    return m;
  }
}

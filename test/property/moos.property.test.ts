// MOOS (seed 003): at every acknowledged write OOS ⊆ MOOS as read back from disk; prediction
// makes sequential writes destage once per N+1 regions; after a crash MOOS covers OOS.
import fc from 'fast-check';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MoosPredictor, PersistentBitmap, createBitmapFile, openBitmapFile } from '../../src-engine/bitmap';
import { tempDir } from '../helpers/tmp';
import { SimFile } from '../sim/sim-file';

type Step = { kind: 'write'; first: number; count: number } | { kind: 'ship'; first: number; count: number };

describe('MoosPredictor', () => {
  it('OOS ⊆ durable MOOS at every acknowledged write, concurrent writes and shipping included', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 50_000 }).chain((regionCount) =>
          fc.record({
            regionCount: fc.constant(regionCount),
            predict: fc.integer({ min: 0, max: 64 }),
            streamWindowMax: fc.integer({ min: 0, max: 96 }),
            steps: fc.array(
              fc.record({
                kind: fc.constantFrom('write' as const, 'write' as const, 'ship' as const),
                first: fc.nat({ max: regionCount - 1 }),
                count: fc.integer({ min: 1, max: 8 }),
              }),
              { maxLength: 60 },
            ),
            concurrency: fc.integer({ min: 1, max: 4 }),
          }),
        ),
        async ({ regionCount, predict, streamWindowMax, steps, concurrency }) => {
          const file = new SimFile();
          const moos = await PersistentBitmap.create(file, regionCount, 'moos');
          const predictor = new MoosPredictor(moos, predict, { streamWindowMaxRegions: streamWindowMax });
          const check = async () => {
            // Read what a crash now would leave: the synced image, loaded afresh.
            const { bitmap: onDisk } = await PersistentBitmap.load(SimFile.from(file.durable));
            return onDisk.bits;
          };
          const lastOf = (step: Step) => Math.min(regionCount - 1, step.first + step.count - 1);
          for (let i = 0; i < steps.length; i += concurrency) {
            const inBatch = steps.slice(i, i + concurrency);
            // markShipped's contract: never ship a region while a write to it is in flight.
            // Such a ship waits for the batch; ships of other regions run alongside the writes.
            const writing = (ship: Step) => inBatch.some((w) => w.kind === 'write' && w.first <= lastOf(ship) && ship.first <= lastOf(w));
            const deferred = inBatch.filter((step) => step.kind === 'ship' && writing(step));
            const batch = inBatch.map((step: Step) => {
              const last = lastOf(step);
              if (step.kind === 'ship') {
                if (!deferred.includes(step)) predictor.markShipped(step.first, last);
                return Promise.resolve();
              }
              return predictor.recordWrite(step.first, last).then(async () => {
                const onDisk = await check();
                for (let r = step.first; r <= last; r++) expect(onDisk.get(r)).toBe(true);
              });
            });
            await Promise.all(batch);
            for (const step of deferred) predictor.markShipped(step.first, lastOf(step));
            const onDisk = await check();
            expect(predictor.oos.isSubsetOf(onDisk)).toBe(true);
          }
        },
      ),
      { numRuns: 80 },
    );
  });

  it('a region taken for shipping stays in durable MOOS until settled shipped; failed ones are out of sync again', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 20_000 }).chain((regionCount) =>
          fc.record({
            regionCount: fc.constant(regionCount),
            predict: fc.integer({ min: 0, max: 32 }),
            streamWindowMax: fc.integer({ min: 0, max: 96 }),
            steps: fc.array(
              fc.record({
                kind: fc.constantFrom('write' as const, 'take' as const, 'settle' as const),
                first: fc.nat({ max: regionCount - 1 }),
                count: fc.integer({ min: 1, max: 8 }),
                shipped: fc.boolean(),
              }),
              { maxLength: 80 },
            ),
          }),
        ),
        async ({ regionCount, predict, streamWindowMax, steps }) => {
          const file = new SimFile();
          const moos = await PersistentBitmap.create(file, regionCount, 'moos');
          const predictor = new MoosPredictor(moos, predict, { streamWindowMaxRegions: streamWindowMax });
          const taken: number[] = [];
          for (const step of steps) {
            const last = Math.min(regionCount - 1, step.first + step.count - 1);
            if (step.kind === 'write') await predictor.recordWrite(step.first, last);
            else if (step.kind === 'take') {
              for (let r = step.first; r <= last; r++) {
                if (!predictor.oos.get(r) || predictor.inFlight.get(r)) continue;
                predictor.take(r);
                taken.push(r);
              }
            } else {
              for (const r of taken.splice(0, step.count)) predictor.settle(r, step.shipped);
            }
            // A crash now: the durable image must cover OOS and every region taken but not settled.
            const { bitmap: onDisk } = await PersistentBitmap.load(SimFile.from(file.durable));
            expect(predictor.oos.isSubsetOf(onDisk.bits)).toBe(true);
            for (const r of taken) expect(onDisk.bits.get(r)).toBe(true);
          }
        },
      ),
      { numRuns: 80 },
    );
  });

  it('sequential writes destage once per N+1 regions (seed 003 prediction)', async () => {
    for (const predict of [0, 3, 16]) {
      const moos = await PersistentBitmap.create(new SimFile(), 20_000, 'moos');
      const predictor = new MoosPredictor(moos, predict);
      for (let r = 0; r < 10_000; r++) await predictor.recordWrite(r, r);
      expect(moos.stats.destages).toBe(Math.ceil(10_000 / (predict + 1)));
    }
  });

  it('a stream window grows to its bound: sequential writes destage about once per bound, and the crash cost stays within the streams', async () => {
    const windowMax = 32;
    const moos = await PersistentBitmap.create(new SimFile(), 20_000, 'moos');
    const predictor = new MoosPredictor(moos, 3, { streamWindowMaxRegions: windowMax });
    let extraMax = 0;
    for (let r = 0; r < 10_000; r++) {
      await predictor.recordWrite(r, r);
      predictor.markShipped(r, r); // a shipper that keeps up: MOOS beyond OOS is the prediction
      extraMax = Math.max(extraMax, moos.durableBits().popcount());
    }
    // Windows 3, 6, 12, 24, then 32: the first few passes are shorter.
    expect(moos.stats.destages).toBeLessThanOrEqual(Math.ceil(10_000 / windowMax) + 4);
    expect(moos.stats.destages).toBeGreaterThanOrEqual(Math.ceil(10_000 / (windowMax + 1)));
    // What a crash would resend: the stream's kept windows and the newest prediction, never more.
    expect(extraMax).toBeLessThanOrEqual(3 * windowMax + 1);
  });

  it('a stream reads ahead: sequential writers find their regions durable instead of waiting for a pass', async () => {
    for (const forward of [true, false]) {
      const file = new SimFile();
      const moos = await PersistentBitmap.create(file, 20_000, 'moos');
      const predictor = new MoosPredictor(moos, 3, { streamWindowMaxRegions: 32 });
      let waited = 0;
      for (let i = 0; i < 5_000; i++) {
        const r = forward ? 1_000 + i : 18_999 - i;
        if (!predictor.tryRecordWrite(r, r)) {
          waited += 1;
          await predictor.recordWrite(r, r);
        }
        // Acknowledged: durable on the simulated disk, whatever the background passes do.
        const { bitmap: onDisk } = await PersistentBitmap.load(SimFile.from(file.durable));
        expect(onDisk.bits.get(r)).toBe(true);
        predictor.markShipped(r, r);
      }
      // Windows 3, 6, 12, 24, 32 ahead of the writer: only the first few writes wait.
      expect(waited).toBeLessThanOrEqual(6);
      expect(moos.stats.destages).toBeLessThanOrEqual(Math.ceil(5_000 / 16) + 6);
    }
  });

  it('bursts sent in descending order (qemu refills its queue so) destage once per window, not twice per burst', async () => {
    const burst = 16;
    const regionCount = 512;
    const passes = async (streamWindowMaxRegions: number) => {
      const moos = await PersistentBitmap.create(new SimFile(), regionCount, 'moos');
      const predictor = new MoosPredictor(moos, 3, { streamWindowMaxRegions });
      for (let top = burst - 1; top < regionCount; top += burst) {
        const writes: Promise<void>[] = [];
        for (let r = top; r > top - burst; r--) writes.push(predictor.recordWrite(r, r));
        await Promise.all(writes);
      }
      expect(predictor.oos.isSubsetOf(moos.durableBits())).toBe(true);
      return moos.stats.destages;
    };
    const fixed = await passes(3);
    const adaptive = await passes(32);
    expect(fixed).toBeGreaterThanOrEqual((2 * regionCount) / burst); // two passes per burst
    expect(adaptive).toBeLessThanOrEqual(regionCount / burst / 2 + 3);
  });

  it("keeps a live stream's predicted regions when another write destages their segment", async () => {
    const moos = await PersistentBitmap.create(new SimFile(), 1000, 'moos');
    const predictor = new MoosPredictor(moos, 4, { streamWindowMaxRegions: 16 });
    await predictor.recordWrite(10, 10); // MOOS 10..14, a stream
    predictor.markShipped(10, 10);
    await predictor.recordWrite(500, 500); // same segment, another stream: 10..14 stay predicted
    expect([...moos.durableBits().indexes()]).toEqual([10, 11, 12, 13, 14, 500, 501, 502, 503, 504]);
    await predictor.compact(); // a clean stop: exactly what is out of sync
    expect([...moos.durableBits().indexes()]).toEqual([500]);
  });

  it('clears MOOS bits of shipped regions when their segment is destaged anyway', async () => {
    const moos = await PersistentBitmap.create(new SimFile(), 1000, 'moos');
    const predictor = new MoosPredictor(moos, 4);
    await predictor.recordWrite(10, 10); // MOOS 10..14
    predictor.markShipped(10, 10);
    await predictor.recordWrite(500, 500); // same segment: 10..14 dropped, 500..504 set
    expect([...moos.durableBits().indexes()]).toEqual([500, 501, 502, 503, 504]);
  });

  it('after a crash, recovery resends exactly the persisted MOOS regions, on real files', async () => {
    const dir = await tempDir();
    const path = join(dir, 'moos.tmbm');
    const moos = await createBitmapFile(path, 4096, 'moos');
    const predictor = new MoosPredictor(moos, 8);
    await predictor.recordWrite(100, 101);
    await predictor.recordWrite(2000, 2000);
    predictor.markShipped(100, 101);
    const oosAtCrash = predictor.oos.clone();
    // Crash: the process dies without closing; a new one loads the file.
    const { bitmap: reloaded } = await openBitmapFile(path);
    const recovered = new MoosPredictor(reloaded, 8);
    const resend = recovered.recoverFromMoos();
    expect(oosAtCrash.isSubsetOf(recovered.oos)).toBe(true);
    // 100..101 were written (shipped later, MOOS clears lazily); their predicted 102..109 were
    // dropped when the write to 2000 destaged the same segment; 2000..2008 are that write
    // and its prediction. A small resync, not a full one.
    expect(resend).toBe(2 + 9);
    expect([...recovered.oos.runs()]).toEqual([
      { start: 100, end: 102 },
      { start: 2000, end: 2009 },
    ]);
    await reloaded.close();
    await moos.close();
  });
});

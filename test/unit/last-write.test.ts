// LastWriteClock (docs/failover.md "Split brain"): the last-write time is durable to within a
// second; a write waits for the record only when it is a second or more behind, and a record
// that failed to sync is written again by the next write.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LastWriteClock } from '../../src-engine/tracking/last-write';
import { tempDir } from '../helpers/tmp';

async function persistedMs(path: string): Promise<number> {
  return (await readFile(path)).readDoubleLE(0);
}

describe('LastWriteClock', () => {
  it('persists at most once a second, and again after a failed sync', async () => {
    const path = join(await tempDir(), 'last-write');
    const clock = await LastWriteClock.open(path);
    const t0 = 1_800_000_000_000;
    await clock.record(t0);
    expect(await persistedMs(path)).toBe(t0);
    expect(clock.tryRecord(t0 + 500)).toBe(true); // within the second: nothing to wait for
    await clock.record(t0 + 1_500);
    expect(await persistedMs(path)).toBe(t0 + 1_500);
    // The disk fails the next sync: that write fails, and the record is not taken as durable.
    const handle = (clock as unknown as { handle: { datasync(): Promise<void> } }).handle;
    const datasync = handle.datasync.bind(handle);
    handle.datasync = () => Promise.reject(new Error('EIO'));
    await expect(clock.record(t0 + 3_000)).rejects.toThrow(/EIO/);
    handle.datasync = datasync;
    expect(clock.tryRecord(t0 + 3_100)).toBe(false);
    await clock.record(t0 + 3_100);
    expect(await persistedMs(path)).toBe(t0 + 3_100);
    expect(clock.lastWriteAtMs).toBe(t0 + 3_100);
    await clock.close();
  });
});

// Two trackers on one MOOS file — what two CLI processes on one home without an agent do (a
// shipping `replicate` and a `pair show` beside it; docs/home-layout.md). A tracker that only
// looked must not write its view back when it closes: it holds the MOOS as it was when it
// opened, which may lack bits the other tracker made durable since (a crash of the writer
// would then resend too little), or hold bits the other one has shipped since.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openBitmapFile } from '../../src-engine/bitmap';
import { WriteTracker } from '../../src-engine/tracking';
import { FileBackend, Volume } from '../../src-engine/volume';
import { tempDir } from '../helpers/tmp';

const regionBytes = 64 * 1024;
const regionCount = 64;

async function volumeOn(path: string): Promise<Volume> {
  return new Volume(await FileBackend.open(path), regionBytes);
}

/** A zeroed volume file and where its MOOS goes. */
async function volumeFile(): Promise<{ path: string; moosPath: string }> {
  const dir = await tempDir();
  const path = join(dir, 'v.img');
  await writeFile(path, Buffer.alloc(regionBytes * regionCount));
  return { path, moosPath: join(dir, 'v.moos.tmbm') };
}

async function moosOnDisk(moosPath: string): Promise<number[]> {
  const { bitmap } = await openBitmapFile(moosPath, 'r');
  try {
    return [...bitmap.bits.indexes()];
  } finally {
    await bitmap.close();
  }
}

describe('a tracker that only looked', () => {
  it('keeps the bits another tracker made durable after it opened (the writer may still crash)', async () => {
    const { path, moosPath } = await volumeFile();
    const writerVolume = await volumeOn(path);
    const readerVolume = await volumeOn(path);
    const writer = await WriteTracker.attach(writerVolume, moosPath, 3);
    const reader = await WriteTracker.attach(readerVolume, moosPath, 3); // opens an empty MOOS
    await writerVolume.write(5 * regionBytes, Buffer.alloc(regionBytes, 1)); // durable in MOOS before its ack
    expect(await moosOnDisk(moosPath)).toContain(5);
    expect(reader.oos.popcount()).toBe(0);
    await reader.close(); // it saw nothing: its view is stale, not news
    expect(await moosOnDisk(moosPath)).toContain(5); // a crash of the writer now still resends region 5
    await writer.close();
    expect(await moosOnDisk(moosPath)).toEqual([5]); // the writer's clean stop: exactly its OOS
    await writerVolume.close();
    await readerVolume.close();
  });

  it('does not put back the bits another tracker shipped after it opened', async () => {
    const { path, moosPath } = await volumeFile();
    const writerVolume = await volumeOn(path);
    const writer = await WriteTracker.attach(writerVolume, moosPath, 3);
    for (const r of [10, 20, 30]) await writerVolume.write(r * regionBytes, Buffer.alloc(regionBytes, 2));
    const readerVolume = await volumeOn(path);
    const reader = await WriteTracker.attach(readerVolume, moosPath, 3); // recovers 10, 20, 30 (and predictions) as OOS
    expect(reader.oos.popcount()).toBeGreaterThanOrEqual(3);
    const taken = await writer.take(64);
    expect(taken).toEqual([10, 20, 30]);
    writer.settle(taken, []); // shipped
    await writer.close(); // MOOS narrowed to OOS ∪ in flight: nothing
    expect(await moosOnDisk(moosPath)).toEqual([]);
    await reader.close();
    expect(await moosOnDisk(moosPath)).toEqual([]); // not the reader's stale 10, 20, 30
    await writerVolume.close();
    await readerVolume.close();
  });
});

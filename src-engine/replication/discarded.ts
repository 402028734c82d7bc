// Saving the regions a split-brain resolution overwrites (docs/failover.md "Split brain"):
// `failback --discard-changes-on SIDE --export-discarded DIR` first reads, from the side whose
// changes are discarded, every region of the resync map and stores them in DIR — `map.tmmap`
// (which regions, docs/map-format.md), `regions.bin` (their bytes back to back, ascending) and
// `manifest.json` (the pair, the side, the region size, the SHA-256 of regions.bin) — so
// nothing is lost by surprise. DIR must not exist (nothing is overwritten).

import { createHash } from 'node:crypto';
import { mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { runsOf, type Bitset } from '../bitmap';
import { fromSystemError } from '../errors';
import { writeFileDurably, syncDirectory } from '../fsync';
import { writeMapFile } from '../maps';
import type { VolumeEndpoint } from './endpoints';
import type { PairRecord } from './pair-store';

export interface DiscardedExport {
  readonly dir: string;
  readonly regions: number;
  readonly bytes: number;
  readonly sha256: string;
}

export async function exportDiscarded(dir: string, record: PairRecord, side: VolumeEndpoint, map: Bitset): Promise<DiscardedExport> {
  await mkdir(dir, { recursive: false, mode: 0o700 }).catch((error: unknown) => {
    throw fromSystemError(error, 'create the export directory', dir);
  });
  const hash = createHash('sha256');
  let bytes = 0;
  const data = await open(join(dir, 'regions.bin'), 'wx', 0o600);
  try {
    for (const [first, count] of runsOf([...map.indexes()])) {
      for await (const { data: region } of side.agent.readRegions(side.path, first, count)) {
        await data.write(region);
        hash.update(region);
        bytes += region.length;
      }
    }
    await data.sync();
  } finally {
    await data.close();
  }
  const info = await side.agent.volumeInfo(side.path);
  await writeMapFile(join(dir, 'map.tmmap'), {
    pair: { name: record.name, pairId: record.pairId },
    regionBytes: record.regionBytes,
    regionCount: map.bitCount,
    volumeBytes: info.sizeBytes,
    createdAt: new Date().toISOString(),
    maps: [{ name: 'discarded', bits: map }],
  });
  const sha256 = hash.digest('hex');
  const manifest = {
    format: 'tidemark/discarded-regions',
    version: 1,
    pair: record.name,
    pairId: record.pairId,
    side: side.volref,
    regionBytes: record.regionBytes,
    regions: map.popcount(),
    bytes,
    sha256,
  };
  await writeFileDurably(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  await syncDirectory(dir);
  return { dir, regions: map.popcount(), bytes, sha256 };
}

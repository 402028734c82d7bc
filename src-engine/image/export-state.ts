// The state of an unfinished export, `DIR/.tidemark-export/state.json` (a store record), beside
// `sigs.part` (one record per stored region: u32le region index ‖ signature). Rewritten at each
// commit, after the data file and sigs.part were synced up to what it says.

import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { TidemarkError, fromSystemError } from '../errors';
import { hashAlgorithms } from '../signature';
import { defineRecord, readRecord, writeRecord } from '../store';
import { exportStateDirName } from './layout';
import { syncDirectoryIfSupported } from './media';

const safeCount = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const exportStateKind = defineRecord(
  'tidemark/image-export-state',
  1,
  z
    .object({
      imageId: z.string().uuid(),
      /** The exported volume as resolved (the pair's primary for a pair). */
      source: z.string().min(1).max(4200),
      volumeId: z.string().regex(/^[0-9a-f]{16}$/),
      pair: z
        .object({ pairId: z.string().uuid(), name: z.string().min(1).max(64), generation: z.number().int().positive() })
        .strict()
        .nullable(),
      sizeBytes: safeCount,
      regionBytes: safeCount,
      regionCount: safeCount,
      hash: z.enum(hashAlgorithms),
      splitBytes: safeCount,
      /** The reference snapshot: null until taken (it is looked up by its label after a crash in between). */
      snapshotId: z.string().uuid().nullable(),
      pointInTime: z.string().max(64).nullable(),
      startedAt: z.string().max(64),
      /** Regions below it are done: stored (committed in the data files and sigs.part) or found empty. */
      nextRegion: safeCount,
      storedRegions: safeCount,
      /** Bytes of all data files together, committed. */
      dataBytes: safeCount,
    })
    .strict(),
);
export type ExportState = z.infer<typeof exportStateKind.schema>;

export const stateDirOf = (dir: string) => join(dir, exportStateDirName);
export const statePathOf = (dir: string) => join(stateDirOf(dir), 'state.json');
export const sigsPathOf = (dir: string) => join(stateDirOf(dir), 'sigs.part');

/** Bytes of one sigs.part record: the region index, then its signature. */
export const sigRecordBytes = (signatureBytes: number) => 4 + signatureBytes;

export async function readExportState(dir: string): Promise<ExportState | undefined> {
  try {
    return await readRecord(statePathOf(dir), exportStateKind);
  } catch (error) {
    if (error instanceof TidemarkError && error.code === 'METADATA_CORRUPT') {
      throw new TidemarkError('METADATA_CORRUPT', `${error.message} (the state of an unfinished export)`, 'add --restart to export anew into this directory');
    }
    throw error;
  }
}

export async function writeExportState(dir: string, state: ExportState): Promise<void> {
  await writeRecord(statePathOf(dir), exportStateKind, state);
}

/** Removes the state directory (the export finished or is abandoned). */
export async function removeExportState(dir: string): Promise<void> {
  try {
    await rm(stateDirOf(dir), { recursive: true, force: true });
  } catch (error) {
    throw fromSystemError(error, 'remove the export state', stateDirOf(dir));
  }
  await syncDirectoryIfSupported(dir);
}

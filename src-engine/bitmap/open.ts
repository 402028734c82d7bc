// Creating and opening bitmap files on disk: created under a temporary name, synced, then
// renamed into place with the directory synced, so a crash never leaves a half-made bitmap.

import { open, rename, unlink } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { fromSystemError } from '../errors';
import { syncDirectory } from '../fsync';
import { NodeBitmapFile } from './file';
import { PersistentBitmap, type BitmapLoadReport } from './persistent-bitmap';

export async function createBitmapFile(path: string, bitCount: number, tag: string): Promise<PersistentBitmap> {
  const temporaryPath = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  try {
    await (await open(temporaryPath, 'w')).close();
  } catch (error) {
    throw fromSystemError(error, 'create bitmap', path);
  }
  try {
    const file = await NodeBitmapFile.open(temporaryPath, 'r+');
    let bitmap: PersistentBitmap;
    try {
      bitmap = await PersistentBitmap.create(file, bitCount, tag);
    } catch (error) {
      await file.close().catch(() => undefined);
      throw error;
    }
    await bitmap.close();
    await rename(temporaryPath, path);
    await syncDirectory(dirname(path));
  } catch (error) {
    await unlink(temporaryPath).catch(() => undefined);
    throw fromSystemError(error, 'create bitmap', path);
  }
  return (await openBitmapFile(path)).bitmap;
}

export async function openBitmapFile(path: string, mode: 'r' | 'r+' = 'r+'): Promise<{ bitmap: PersistentBitmap; report: BitmapLoadReport }> {
  const file = await NodeBitmapFile.open(path, mode);
  try {
    return await PersistentBitmap.load(file, { readOnly: mode === 'r' });
  } catch (error) {
    await file.close();
    throw error;
  }
}

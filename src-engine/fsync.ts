// Durability helpers shared by every module that persists files.

import { open } from 'node:fs/promises';

/** Syncs a directory so a rename or create inside it survives a crash. */
export async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

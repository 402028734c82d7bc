// A periodic pair's applied cycles, kept beside its record (`cycles.json`, the last 200): what
// `pair show` and the console's timeline list, whichever process ran them (docs/replication.md
// "Periodic cycles"). Informational: a cycle is done when its apply is; a history that cannot
// be written is reported as a warning, never a failed cycle.

import { join } from 'node:path';
import { hostname, userInfo } from 'node:os';
import { z } from 'zod';
import { defineRecord, readRecord, writeRecord } from '../store';

export const cycleHistoryMax = 200;

const cycleEntrySchema = z
  .object({
    cycle: z.number().int().positive(),
    /** The primary's instant the secondary holds since this cycle. */
    pointInTime: z.string().max(64),
    regionsTransferred: z.number().int().nonnegative(),
    bytesTransferred: z.number().int().nonnegative(),
    durationMs: z.number().int().nonnegative(),
    finishedAtMs: z.number().int().nonnegative(),
    /** The consistency group whose cycle it was, if any. */
    group: z.string().max(64).nullable(),
    /** Who ran it: user@host of the orchestrator. */
    by: z.string().max(200),
  })
  .strict();
export type CycleEntry = z.infer<typeof cycleEntrySchema>;

const cycleHistoryKind = defineRecord('tidemark/cycle-history', 1, z.object({ cycles: z.array(cycleEntrySchema).max(cycleHistoryMax) }).strict());

const historyPath = (pairDir: string) => join(pairDir, 'cycles.json');

/** Oldest first; empty for a pair that never cycled (or whose history is unreadable). */
export async function readCycleHistory(pairDir: string): Promise<CycleEntry[]> {
  const record = await readRecord(historyPath(pairDir), cycleHistoryKind).catch(() => undefined);
  return record?.cycles ?? [];
}

/** Appends a finished cycle (one already recorded — a resumed cycle finishing again — is replaced). */
export async function recordCycle(
  pairDir: string,
  entry: Omit<CycleEntry, 'by' | 'finishedAtMs' | 'group'> & { group?: string | null },
  onWarning?: (message: string) => void,
): Promise<void> {
  try {
    const full: CycleEntry = {
      cycle: entry.cycle,
      pointInTime: entry.pointInTime,
      regionsTransferred: entry.regionsTransferred,
      bytesTransferred: entry.bytesTransferred,
      durationMs: Math.round(entry.durationMs),
      finishedAtMs: Date.now(),
      group: entry.group ?? null,
      by: `${userInfo().username}@${hostname()}`,
    };
    const cycles = (await readCycleHistory(pairDir)).filter((c) => c.cycle !== full.cycle);
    await writeRecord(historyPath(pairDir), cycleHistoryKind, { cycles: [...cycles, full].slice(-cycleHistoryMax) });
  } catch (error) {
    onWarning?.(`cycle ${entry.cycle} applied, but its history entry was not written (${(error as Error).message})`);
  }
}

// The durable cursor of a sync, beside the pair record: `sync.json` (where the sync is) and
// `sync-todo.bin` (the frozen set a tail still has to convey, one bit per region). Nothing a
// commit recorded is done again after a crash or a cancel. Design: docs/sync.md "Cursor".

import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { Bitset } from '../../bitmap';
import { TidemarkError, errnoCode, fromSystemError } from '../../errors';
import { writeFileDurably } from '../../fsync';
import { defineRecord, readRecord, writeRecord } from '../../store';

export const syncMethods = ['full', 'tardy', 'early', 'signature', 'realized'] as const;
export type SyncMethod = (typeof syncMethods)[number];

const totalsSchema = z.object({
  regionsTransferred: z.number().int().nonnegative(),
  bytesTransferred: z.number().int().nonnegative(),
  regionsReclaimed: z.number().int().nonnegative(),
});
export type SyncTotals = z.infer<typeof totalsSchema>;

export const syncCursorKind = defineRecord(
  'tidemark/sync-cursor',
  1,
  z.object({
    syncId: z.string().uuid(),
    method: z.enum(syncMethods),
    /** 'extent': round 0 passes over every region; 'pending': only what `since` holds. */
    scope: z.enum(['extent', 'pending']),
    generation: z.number().int().positive(),
    round: z.number().int().nonnegative(),
    /** pass: round 0 over the extent, done below nextRegion; tail: conveying the todo from snapshotId. */
    phase: z.enum(['pass', 'tail']),
    nextRegion: z.number().int().nonnegative(),
    /** The primary's sync snapshot in use (the early pass's, or the tail's). */
    snapshotId: z.string().nullable(),
    snapshotCreatedAt: z.string().nullable(),
    /** `since`'s bitmap id when it was frozen: unchanged after a crash means the swap did not happen. */
    sinceBitmapId: z.string().nullable(),
    /** Decided once in round 0: skip regions unrealized on the primary (the secondary has nothing). */
    sparse: z.boolean(),
    startedAt: z.string(),
    totals: totalsSchema,
  }),
);
export type SyncCursor = z.infer<typeof syncCursorKind.schema>;

export class CursorStore {
  constructor(private readonly pairDir: string) {}

  private get cursorPath(): string {
    return join(this.pairDir, 'sync.json');
  }

  private get todoPath(): string {
    return join(this.pairDir, 'sync-todo.bin');
  }

  read(): Promise<SyncCursor | undefined> {
    return readRecord(this.cursorPath, syncCursorKind);
  }

  write(cursor: SyncCursor): Promise<void> {
    return writeRecord(this.cursorPath, syncCursorKind, cursor);
  }

  async readTodo(regionCount: number): Promise<Bitset> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.todoPath);
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return new Bitset(regionCount);
      throw fromSystemError(error, 'read the sync todo', this.todoPath);
    }
    if (bytes.length !== Math.ceil(regionCount / 8)) {
      throw new TidemarkError(
        'METADATA_CORRUPT',
        `sync todo ${this.todoPath} holds ${bytes.length} bytes, not ${Math.ceil(regionCount / 8)} for ${regionCount} regions`,
        'run the sync again with --restart (it starts over; nothing on the volumes is lost)',
      );
    }
    return Bitset.fromBytes(regionCount, bytes);
  }

  async writeTodo(todo: Bitset): Promise<void> {
    await writeFileDurably(this.todoPath, todo.toBytes()).catch((error: unknown) => {
      throw fromSystemError(error, 'write the sync todo', this.todoPath);
    });
  }

  /** The sync finished or was abandoned: its cursor goes. */
  async remove(): Promise<void> {
    await rm(this.todoPath, { force: true });
    await rm(this.cursorPath, { force: true });
  }
}

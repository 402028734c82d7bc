// Durable pair records in a home: `<home>/pairs/<name>/pair.json`, plus the pair's own
// state files (MOOS bitmap, change maps) beside it. Schema in docs/home-layout.md.

import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { TidemarkError, usageError } from '../errors';
import { hashAlgorithms } from '../signature';
import { defineRecord, readRecord, writeRecord } from '../store';

const sideSchema = z.object({
  /** Where the volume is: a local path (remote VOLREFs with SSH agents). */
  volref: z.string().min(1),
  volumeId: z.string().nullable(),
});

export const pairRecordKind = defineRecord(
  'tidemark/pair',
  1,
  z.object({
    pairId: z.string().uuid(),
    name: z.string(),
    mode: z.enum(['continuous', 'periodic']),
    regionBytes: z.number().int().positive(),
    hash: z.enum(hashAlgorithms),
    predictRegions: z.number().int().nonnegative(),
    intervalMs: z.number().int().positive(),
    primary: sideSchema,
    secondary: sideSchema,
    generation: z.number().int().nonnegative(),
    createdAt: z.string(),
    /** The last finished sync: cleared when one starts, set when it finishes (absent in older records). */
    lastSync: z
      .object({
        syncId: z.string().uuid(),
        method: z.string(),
        finishedAt: z.string(),
        pointInTime: z.string(),
        generation: z.number().int().positive(),
      })
      .nullable()
      .optional(),
    /** The last seed image exported from the primary (`image export NAME`; absent in older records). */
    reference: z
      .object({
        imageId: z.string().uuid(),
        manifestSha256: z.string().regex(/^[0-9a-f]{64}$/),
        generation: z.number().int().positive(),
        pointInTime: z.string(),
      })
      .nullable()
      .optional(),
    /**
     * A failover not yet failed back (docs/failover.md): `primary` is the promoted volume, the
     * old primary is `secondary` but still unaware of it until `failback` demotes it and seeds
     * the resync. Absent in older records.
     */
    failover: z
      .object({
        atMs: z.number().int().nonnegative(),
        forced: z.boolean(),
        /** The generation both sides shared before it. */
        fromGeneration: z.number().int().positive(),
        /** The old primary was reachable and demoted at the failover itself. */
        oldPrimaryDemoted: z.boolean(),
        /** `seeded`: the old primary is demoted and the new primary's tracking holds the resync map; replication finishes it. */
        phase: z.enum(['promoted', 'seeded']),
        /** The resync map's size once seeded. */
        resyncRegions: z.number().int().nonnegative().nullable(),
      })
      .nullable()
      .optional(),
  }),
);
export type PairRecord = z.infer<typeof pairRecordKind.schema>;
export type PairMode = PairRecord['mode'];

const pairNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function validatePairName(name: string): void {
  if (!pairNamePattern.test(name)) {
    throw usageError(`invalid pair name "${name}"`, 'use 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit');
  }
}

export class PairStore {
  constructor(readonly homeDir: string) {}

  pairDir(name: string): string {
    validatePairName(name);
    return join(this.homeDir, 'pairs', name);
  }

  async create(fields: Omit<PairRecord, 'pairId' | 'createdAt' | 'generation' | 'lastSync'>): Promise<PairRecord> {
    const dir = this.pairDir(fields.name);
    if (await this.get(fields.name)) {
      throw new TidemarkError('ALREADY_EXISTS', `pair "${fields.name}" already exists`, 'choose another name, or delete the old pair first');
    }
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const record: PairRecord = { ...fields, pairId: randomUUID(), generation: 1, createdAt: new Date().toISOString(), lastSync: null };
    await writeRecord(join(dir, 'pair.json'), pairRecordKind, record);
    return record;
  }

  /** Changes fields of an existing record (durably). */
  async update(
    name: string,
    change: Partial<Pick<PairRecord, 'lastSync' | 'generation' | 'reference' | 'primary' | 'secondary' | 'failover'>>,
  ): Promise<PairRecord> {
    const record = { ...(await this.require(name)), ...change };
    await writeRecord(join(this.pairDir(name), 'pair.json'), pairRecordKind, record);
    return record;
  }

  async get(name: string): Promise<PairRecord | undefined> {
    return readRecord(join(this.pairDir(name), 'pair.json'), pairRecordKind);
  }

  async require(name: string): Promise<PairRecord> {
    const record = await this.get(name);
    if (!record)
      throw new TidemarkError('NOT_FOUND', `no pair named "${name}" in this home`, 'see `tidemark pair list`, or create it with `tidemark pair create`');
    return record;
  }

  async list(): Promise<PairRecord[]> {
    let names: string[];
    try {
      names = await readdir(join(this.homeDir, 'pairs'));
    } catch {
      return [];
    }
    const records = await Promise.all(names.filter((n) => pairNamePattern.test(n)).map((n) => this.get(n)));
    return records.filter((r): r is PairRecord => r !== undefined).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Removes the pair's record and state; the volumes' data is kept. */
  async delete(name: string): Promise<void> {
    await this.require(name);
    await rm(this.pairDir(name), { recursive: true, force: true });
  }
}

// Durable metadata: atomic, checksummed, schema-validated JSON files.
// Write: temp file in the same directory, fsync, rename over the target, fsync the directory.
// Read: verify the checksum and the schema; a damaged file is reported by path, never replaced.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { z } from 'zod';
import { TidemarkError, errnoCode, fromSystemError } from '../errors';
import { writeFileDurably } from '../fsync';

interface Envelope {
  format: string;
  version: number;
  sha256: string;
  body: unknown;
}

/** A kind of metadata file: its format tag, schema version and schema. */
export interface RecordKind<T> {
  readonly format: string;
  readonly version: number;
  readonly schema: z.ZodType<T>;
}

export function defineRecord<T>(format: string, version: number, schema: z.ZodType<T>): RecordKind<T> {
  return { format, version, schema };
}

function bodyChecksum(body: unknown): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('hex');
}

export async function writeRecord<T>(path: string, kind: RecordKind<T>, value: T): Promise<void> {
  const body = kind.schema.parse(value);
  const envelope: Envelope = { format: kind.format, version: kind.version, sha256: bodyChecksum(body), body };
  const text = `${JSON.stringify(envelope, null, 2)}\n`;
  await writeFileDurably(path, text).catch((error: unknown) => {
    throw fromSystemError(error, `write ${kind.format} metadata`, path);
  });
}

function corrupt(path: string, why: string): TidemarkError {
  return new TidemarkError(
    'METADATA_CORRUPT',
    `metadata file ${path} is damaged: ${why}`,
    'it was left untouched; restore it from a backup or move it aside to start that record afresh',
  );
}

/** Reads a record; returns undefined when the file does not exist. */
export async function readRecord<T>(path: string, kind: RecordKind<T>): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw fromSystemError(error, `read ${kind.format} metadata`, path);
  }
  let envelope: Partial<Envelope>;
  try {
    envelope = JSON.parse(text) as Partial<Envelope>;
  } catch {
    throw corrupt(path, 'not valid JSON');
  }
  if (typeof envelope !== 'object' || envelope === null) throw corrupt(path, 'not a metadata envelope');
  if (envelope.format !== kind.format) throw corrupt(path, `expected format "${kind.format}", found "${String(envelope.format)}"`);
  if (envelope.version !== kind.version) {
    throw new TidemarkError(
      'UNSUPPORTED',
      `metadata file ${path} has version ${String(envelope.version)}, this Tidemark reads version ${kind.version}`,
      'use the Tidemark version that wrote it, or upgrade this one',
    );
  }
  if (envelope.sha256 !== bodyChecksum(envelope.body)) throw corrupt(path, 'checksum mismatch');
  const parsed = kind.schema.safeParse(envelope.body);
  if (!parsed.success) throw corrupt(path, `schema: ${parsed.error.issues[0]?.path.join('.') ?? ''} ${parsed.error.issues[0]?.message ?? ''}`.trim());
  return parsed.data;
}

/** Reads a record that must exist. */
export async function requireRecord<T>(path: string, kind: RecordKind<T>, hint: string): Promise<T> {
  const value = await readRecord(path, kind);
  if (value === undefined) throw new TidemarkError('NOT_FOUND', `metadata file ${path} does not exist`, hint);
  return value;
}

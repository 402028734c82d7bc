// manifest.json (docs/image-format.md): a store envelope {format, version, sha256, body} whose
// body names the volume, pair, hash, layout, index.bin and every data file. Read as untrusted
// input: bounded, checksummed, strictly parsed, then every number checked against the others.

import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { z } from 'zod';
import { isPowerOfTwo } from '../assert';
import { regionBytesMax, regionBytesMin, regionCountMax, volumeBytesMax } from '../constants';
import { formatCount } from '../size';
import { hashAlgorithms, signatureBytes } from '../signature';
import { defineRecord } from '../store';
import {
  dataFileName,
  dataFilesMax,
  imageFormat,
  imageFormatVersion,
  indexFileBytes,
  indexName,
  manifestBytesMax,
  manifestName,
  regionsPerFileFor,
  shortfallBytes,
  splitBytesMin,
} from './layout';
import { NotRegularFile, openRegular, readExactly } from './media';
import type { ProblemSink } from './problems';

const safeCount = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const isoTime = z
  .string()
  .max(64)
  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/);
const hexOf = (chars: number) => z.string().regex(new RegExp(`^[0-9a-f]{${chars}}$`));

const fileEntrySchema = z
  .object({ name: z.string().max(255), regions: safeCount, bytes: safeCount, checksum: z.string().regex(/^(?:[0-9a-f]{32}|[0-9a-f]{64})$/) })
  .strict();

export const manifestBodySchema = z
  .object({
    imageId: z.string().uuid(),
    /** When the export finished. */
    createdAt: isoTime,
    /** When the reference snapshot was taken: the point in time the image holds. */
    pointInTime: isoTime,
    tidemarkVersion: z.string().min(1).max(64),
    volume: z.object({ volumeId: hexOf(16), sizeBytes: safeCount, regionBytes: safeCount, regionCount: safeCount, source: z.string().max(4200) }).strict(),
    pair: z
      .object({ pairId: z.string().uuid(), name: z.string().min(1).max(64), generation: z.number().int().positive().max(Number.MAX_SAFE_INTEGER) })
      .strict()
      .nullable(),
    hash: z.enum(hashAlgorithms),
    compression: z.literal('none'),
    splitBytes: safeCount,
    regionsPerFile: safeCount,
    storedRegions: safeCount,
    index: z.object({ name: z.literal(indexName), bytes: safeCount, sha256: hexOf(64) }).strict(),
    files: z.array(fileEntrySchema),
  })
  .strict();
export type ImageManifest = z.infer<typeof manifestBodySchema>;
export type ImageFileEntry = z.infer<typeof fileEntrySchema>;
export const imageManifestKind = defineRecord(imageFormat, imageFormatVersion, manifestBodySchema);

const sha256Hex = (data: Uint8Array | string) => createHash('sha256').update(data).digest('hex');

/** The manifest file's text: the same envelope as every store record (docs/home-layout.md). */
export function encodeManifest(body: ImageManifest): string {
  const parsed = manifestBodySchema.parse(body);
  const envelope = { format: imageManifestKind.format, version: imageManifestKind.version, sha256: sha256Hex(JSON.stringify(parsed)), body: parsed };
  return `${JSON.stringify(envelope, null, 2)}\n`;
}

export interface ReadManifest {
  readonly manifest: ImageManifest;
  /** SHA-256 of manifest.json's bytes: what `sha256sum manifest.json` prints. */
  readonly manifestSha256: string;
}

/** Reads and parses manifest.json, reporting the first thing wrong with it; undefined when unusable. */
export async function readManifest(dir: string, report: ProblemSink): Promise<ReadManifest | undefined> {
  const bytes = await readManifestBytes(dir, report);
  if (!bytes) return undefined;
  const fail = (kind: 'unreadable' | 'structure' | 'unsupported' | 'checksum' | 'schema', detail: string) => void report({ file: manifestName, kind, detail });
  let envelope: unknown;
  try {
    envelope = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return fail('unreadable', 'not valid JSON');
  }
  if (typeof envelope !== 'object' || envelope === null || Array.isArray(envelope)) return fail('structure', 'not a Tidemark image manifest');
  const { format, version, sha256, body } = envelope as Record<string, unknown>;
  if (format !== imageFormat) return fail('structure', `not a Tidemark image manifest (format ${JSON.stringify(format)}, expected "${imageFormat}")`);
  if (version !== imageFormatVersion) {
    const newer = typeof version === 'number' && version > imageFormatVersion;
    return fail(
      'unsupported',
      `format version ${JSON.stringify(version)}${newer ? ', made by a newer Tidemark' : ''}; this Tidemark reads version ${imageFormatVersion}`,
    );
  }
  if (sha256 !== sha256Hex(JSON.stringify(body))) return fail('checksum', 'its sha256 does not match its body: the file was altered or damaged');
  const parsed = manifestBodySchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return fail('schema', `body.${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
  }
  return { manifest: parsed.data, manifestSha256: sha256Hex(bytes) };
}

async function readManifestBytes(dir: string, report: ProblemSink): Promise<Uint8Array | undefined> {
  const path = join(dir, manifestName);
  try {
    const { handle, sizeBytes } = await openRegular(path);
    try {
      if (sizeBytes > manifestBytesMax) {
        report({ file: manifestName, kind: 'limits', detail: `${sizeBytes} bytes, more than the ${manifestBytesMax} a manifest may have` });
        return undefined;
      }
      const bytes = new Uint8Array(sizeBytes);
      await readExactly(handle, bytes, 0, path);
      return bytes;
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (!(error instanceof NotRegularFile)) throw error;
    const detail = error.found === 'missing' ? 'there is no manifest: the export did not finish, or this is not an image directory' : error.message;
    report({ file: manifestName, kind: error.found === 'missing' ? 'missing' : 'not-regular', detail });
    return undefined;
  }
}

/**
 * Checks every number of the manifest against the limits and against each other. Only the
 * expected names are ever opened, so a `../x`, `/etc/x` or look-alike entry is refused here,
 * naming the entry. Returns false after reporting the first violation.
 */
export function checkManifest(manifest: ImageManifest, report: ProblemSink): boolean {
  const violation = limitsViolation(manifest) ?? filesViolation(manifest);
  if (violation)
    report({ file: violation.entry ? `${manifestName} (${violation.entry})` : manifestName, kind: violation.kind ?? 'limits', detail: violation.detail });
  return violation === undefined;
}

interface Violation {
  readonly entry?: string;
  readonly detail: string;
  /** 'limits' unless said otherwise. */
  readonly kind?: 'structure';
}

function limitsViolation(m: ImageManifest): Violation | undefined {
  const { sizeBytes, regionBytes, regionCount } = m.volume;
  const expectedRegionCount = Math.ceil(sizeBytes / regionBytes);
  if (!isPowerOfTwo(regionBytes) || regionBytes < regionBytesMin || regionBytes > regionBytesMax)
    return { entry: 'volume.regionBytes', detail: `${regionBytes} is not a power of two from ${regionBytesMin} to ${regionBytesMax}` };
  if (sizeBytes < 1 || sizeBytes > volumeBytesMax) return { entry: 'volume.sizeBytes', detail: `${sizeBytes} is not from 1 to ${volumeBytesMax}` };
  if (regionCount !== expectedRegionCount)
    return { entry: 'volume.regionCount', detail: `${regionCount}, but ${sizeBytes} bytes in regions of ${regionBytes} make ${expectedRegionCount}` };
  if (regionCount > regionCountMax) return { entry: 'volume.regionCount', detail: `${regionCount} is more than the ${regionCountMax} Tidemark can track` };
  if (m.storedRegions > regionCount) return { entry: 'storedRegions', detail: `${m.storedRegions} is more than the ${regionCount} regions of the volume` };
  if (m.splitBytes < Math.max(regionBytes, splitBytesMin))
    return { entry: 'splitBytes', detail: `${m.splitBytes} is less than a region and less than ${splitBytesMin}` };
  if (m.regionsPerFile !== regionsPerFileFor(m.splitBytes, regionBytes))
    return {
      entry: 'regionsPerFile',
      detail: `${m.regionsPerFile}, but ${m.splitBytes} bytes hold ${formatCount(regionsPerFileFor(m.splitBytes, regionBytes), 'region')}`,
    };
  const fileCount = Math.ceil(m.storedRegions / m.regionsPerFile);
  if (fileCount > dataFilesMax) return { entry: 'files', detail: `${fileCount} data files would be needed, more than ${dataFilesMax}` };
  if (m.files.length !== fileCount)
    return { entry: 'files', detail: `${m.files.length} entries, but ${m.storedRegions} stored regions of ${m.regionsPerFile} per file make ${fileCount}` };
  const expectedIndexBytes = indexFileBytes(regionCount, m.storedRegions, signatureBytes(m.hash));
  if (m.index.bytes !== expectedIndexBytes) return { entry: 'index.bytes', detail: `${m.index.bytes}, but the layout makes ${expectedIndexBytes}` };
  return undefined;
}

/** Each entry is exactly the expected file: its name, region count and length (the last may end with a short region). */
function filesViolation(m: ImageManifest): Violation | undefined {
  const width = 2 * signatureBytes(m.hash);
  const shortfall = shortfallBytes(m.volume);
  let regionsListed = 0;
  for (const [k, file] of m.files.entries()) {
    const name = dataFileName(k);
    if (file.name !== name)
      return {
        entry: `files[${k}].name`,
        kind: 'structure',
        detail: `${JSON.stringify(file.name)}, expected "${name}": only the expected names are ever opened`,
      };
    const regions = Math.min(m.regionsPerFile, m.storedRegions - k * m.regionsPerFile);
    if (file.regions !== regions)
      return { entry: `files[${k}].regions`, detail: `${file.regions}, but the layout puts ${formatCount(regions, 'region')} in ${name}` };
    const fullBytes = regions * m.volume.regionBytes;
    const isLast = k === m.files.length - 1;
    if (file.bytes !== fullBytes && !(isLast && shortfall > 0 && file.bytes === fullBytes - shortfall))
      return { entry: `files[${k}].bytes`, detail: `${file.bytes}, but ${formatCount(regions, 'region')} of ${m.volume.regionBytes} bytes make ${fullBytes}` };
    if (file.checksum.length !== width)
      return { entry: `files[${k}].checksum`, detail: `${file.checksum.length / 2} bytes, but ${m.hash} signatures have ${width / 2}` };
    regionsListed += file.regions;
  }
  if (regionsListed !== m.storedRegions)
    return { entry: 'files', detail: `they hold ${formatCount(regionsListed, 'region')}, but storedRegions is ${m.storedRegions}` };
  return undefined;
}

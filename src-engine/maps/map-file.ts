// Map files (`.tmmap`, docs/map-format.md): named region maps of one pair, saved for later
// inspection. Magic, version, a JSON header (zod, strict), each map's bits, then a SHA-256 of
// everything before it. Read as untrusted input: size-bounded, every field checked against
// the others, one-line errors naming the file.

import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { z } from 'zod';
import { invariantViolated, isPowerOfTwo } from '../assert';
import { Bitset } from '../bitmap';
import { GiB, KiB, regionBytesMax, regionBytesMin, regionCountMax, volumeBytesMax } from '../constants';
import { TidemarkError, fromSystemError } from '../errors';
import { writeFileDurably } from '../fsync';
import { formatBytes } from '../size';
import { tidemarkVersion } from '../version';

export const mapFileMagic = 'TMREGMAP';
export const mapFileFormat = 'tidemark/map';
export const mapFileVersion = 1;
/** magic (8) · u32 version · u32 header bytes. */
export const mapFilePreambleBytes = 16;
export const mapFileChecksumBytes = 32;
export const mapFileHeaderBytesMax = 64 * KiB;
export const mapFileMapsMax = 16;
/** Four maps of the largest volume (2^31 − 1 regions, 256 MiB each). */
export const mapFileBytesMax = 1 * GiB;

const mapNamePattern = /^[a-z0-9][a-z0-9-]{0,31}$/;
const safeCount = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const isoTime = z
  .string()
  .max(64)
  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/);

const headerSchema = z
  .object({
    format: z.literal(mapFileFormat),
    version: z.literal(mapFileVersion),
    pair: z.object({ name: z.string().min(1).max(64), pairId: z.string().uuid() }).strict(),
    regionBytes: safeCount,
    regionCount: safeCount,
    volumeBytes: safeCount,
    createdAt: isoTime,
    tidemarkVersion: z.string().min(1).max(64),
    maps: z
      .array(z.object({ name: z.string().regex(mapNamePattern), setCount: safeCount }).strict())
      .min(1)
      .max(mapFileMapsMax),
  })
  .strict();
type MapFileHeader = z.infer<typeof headerSchema>;

export interface NamedMap {
  /** `oos`, `moos`, `failback`, `resync`, …: 1–32 of a-z, 0-9, - (not starting with -). */
  readonly name: string;
  readonly bits: Bitset;
}

/** What a map file holds: maps of one pair, one bit per region. */
export interface MapFileContents {
  readonly pair: { readonly name: string; readonly pairId: string };
  readonly regionBytes: number;
  readonly regionCount: number;
  readonly volumeBytes: number;
  /** ISO-8601 UTC. */
  readonly createdAt: string;
  readonly maps: readonly NamedMap[];
  /** Of the Tidemark that wrote the file (set on read; the writer records its own). */
  readonly tidemarkVersion?: string;
}

const bitsBytesOf = (regionCount: number) => Math.ceil(regionCount / 8);

/** The whole file's length for a header: preamble, header, every map's bits, checksum. */
function fileBytesFor(headerBytes: number, header: Pick<MapFileHeader, 'regionCount' | 'maps'>): number {
  return mapFilePreambleBytes + headerBytes + header.maps.length * bitsBytesOf(header.regionCount) + mapFileChecksumBytes;
}

/** Why the header's numbers disagree with each other or the limits, or undefined. */
function inconsistency(header: MapFileHeader): string | undefined {
  const { regionBytes, regionCount, volumeBytes } = header;
  if (!isPowerOfTwo(regionBytes) || regionBytes < regionBytesMin || regionBytes > regionBytesMax)
    return `region size ${regionBytes} is not a power of two from ${formatBytes(regionBytesMin)} to ${formatBytes(regionBytesMax)}`;
  if (volumeBytes > volumeBytesMax) return `volume size ${volumeBytes} exceeds the largest volume (${formatBytes(volumeBytesMax)})`;
  if (regionCount > regionCountMax) return `region count ${regionCount} exceeds the limit (${regionCountMax})`;
  if (regionCount !== Math.ceil(volumeBytes / regionBytes))
    return `region count ${regionCount} does not match volume size ${volumeBytes} / region size ${regionBytes}`;
  const names = new Set(header.maps.map((m) => m.name));
  if (names.size !== header.maps.length) return 'two maps have the same name';
  const overfull = header.maps.find((m) => m.setCount > regionCount);
  if (overfull) return `map ${overfull.name} claims ${overfull.setCount} set regions of ${regionCount}`;
  return undefined;
}

function damaged(path: string, why: string): TidemarkError {
  return new TidemarkError(
    'METADATA_CORRUPT',
    `map file ${path} is damaged: ${why}`,
    'export the map again (`tidemark map NAME --which MAP --export FILE`) or get an undamaged copy',
  );
}

function sha256(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}

function headerOf(contents: MapFileContents): MapFileHeader {
  return {
    format: mapFileFormat,
    version: mapFileVersion,
    pair: { name: contents.pair.name, pairId: contents.pair.pairId },
    regionBytes: contents.regionBytes,
    regionCount: contents.regionCount,
    volumeBytes: contents.volumeBytes,
    createdAt: contents.createdAt,
    tidemarkVersion,
    maps: contents.maps.map((m) => ({ name: m.name, setCount: m.bits.popcount() })),
  };
}

/** The file's bytes. Refuses (INVARIANT) contents a reader would reject. */
export function encodeMapFile(contents: MapFileContents): Buffer {
  const parsed = headerSchema.safeParse(headerOf(contents));
  if (!parsed.success) invariantViolated(`map file header: ${parsed.error.issues[0]?.path.join('.')} ${parsed.error.issues[0]?.message}`);
  const why = inconsistency(parsed.data) ?? contents.maps.find((m) => m.bits.bitCount !== contents.regionCount)?.name;
  if (why !== undefined) invariantViolated(`map file contents are consistent (${why})`);
  const header = Buffer.from(JSON.stringify(parsed.data), 'utf8');
  if (header.length > mapFileHeaderBytesMax || fileBytesFor(header.length, parsed.data) > mapFileBytesMax)
    invariantViolated(`a map file of ${contents.maps.length} maps of ${contents.regionCount} regions fits ${formatBytes(mapFileBytesMax)}`);
  const preamble = Buffer.alloc(mapFilePreambleBytes);
  preamble.write(mapFileMagic, 0, 'latin1');
  preamble.writeUInt32LE(mapFileVersion, 8);
  preamble.writeUInt32LE(header.length, 12);
  const body = Buffer.concat([preamble, header, ...contents.maps.map((m) => m.bits.toBytes())]);
  return Buffer.concat([body, sha256(body)]);
}

/** Magic, version and header length; throws naming the file. */
function readPreamble(path: string, bytes: Buffer): number {
  if (bytes.toString('latin1', 0, 8) !== mapFileMagic)
    throw new TidemarkError(
      'METADATA_CORRUPT',
      `${path} is not a Tidemark map file (no ${mapFileMagic} signature)`,
      'open a .tmmap file written by `tidemark map … --export`',
    );
  if (bytes.length < mapFilePreambleBytes) throw damaged(path, `truncated: ${bytes.length} bytes, shorter than its preamble`);
  const version = bytes.readUInt32LE(8);
  if (version !== mapFileVersion) {
    throw new TidemarkError(
      'UNSUPPORTED',
      `map file ${path} has format version ${version}; this Tidemark reads version ${mapFileVersion}`,
      'open it with the Tidemark version that wrote it, or upgrade this one',
    );
  }
  const headerBytes = bytes.readUInt32LE(12);
  if (headerBytes > mapFileHeaderBytesMax) throw damaged(path, `header length ${headerBytes} exceeds ${mapFileHeaderBytesMax} bytes`);
  if (mapFilePreambleBytes + headerBytes > bytes.length) throw damaged(path, `truncated: ${bytes.length} bytes, shorter than its header`);
  return headerBytes;
}

function parseHeader(path: string, bytes: Buffer, headerBytes: number): MapFileHeader {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8', mapFilePreambleBytes, mapFilePreambleBytes + headerBytes));
  } catch {
    throw damaged(path, 'the header is not valid JSON');
  }
  const parsed = headerSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? ` ${issue.path.join('.')}` : '';
    throw damaged(path, `header${where}: ${issue?.message ?? 'invalid'}`.replace(/\s+/g, ' '));
  }
  const why = inconsistency(parsed.data);
  if (why !== undefined) throw damaged(path, why);
  return parsed.data;
}

function checkLengthAndChecksum(path: string, bytes: Buffer, headerBytes: number, header: MapFileHeader): void {
  const expectedBytes = fileBytesFor(headerBytes, header);
  if (bytes.length < expectedBytes) throw damaged(path, `truncated: ${bytes.length} bytes, its header describes ${expectedBytes}`);
  if (bytes.length > expectedBytes)
    throw damaged(path, `${bytes.length - expectedBytes} unexpected bytes after the end its header describes (${expectedBytes})`);
  const bodyBytes = expectedBytes - mapFileChecksumBytes;
  if (!sha256(bytes.subarray(0, bodyBytes)).equals(bytes.subarray(bodyBytes))) throw damaged(path, 'checksum mismatch (the bytes were altered)');
}

function decodeMap(path: string, bytes: Buffer, offset: number, header: MapFileHeader, entry: MapFileHeader['maps'][number]): NamedMap {
  const { regionCount } = header;
  const data = bytes.subarray(offset, offset + bitsBytesOf(regionCount));
  const tailBits = regionCount % 8;
  if (tailBits !== 0 && data[data.length - 1]! >>> tailBits !== 0) throw damaged(path, `map ${entry.name} has bits set past region ${regionCount - 1}`);
  const bits = Bitset.fromBytes(regionCount, data);
  const setCount = bits.popcount();
  if (setCount !== entry.setCount) throw damaged(path, `map ${entry.name} has ${setCount} regions set, its header says ${entry.setCount}`);
  return { name: entry.name, bits };
}

/** Parses a map file's bytes; `path` names it in errors. */
export function decodeMapFile(path: string, bytes: Buffer): MapFileContents {
  const headerBytes = readPreamble(path, bytes);
  const header = parseHeader(path, bytes, headerBytes);
  checkLengthAndChecksum(path, bytes, headerBytes, header);
  const first = mapFilePreambleBytes + headerBytes;
  const maps = header.maps.map((entry, i) => decodeMap(path, bytes, first + i * bitsBytesOf(header.regionCount), header, entry));
  const { pair, regionBytes, regionCount, volumeBytes, createdAt } = header;
  return { pair, regionBytes, regionCount, volumeBytes, createdAt, maps, tidemarkVersion: header.tidemarkVersion };
}

/** Writes a map file atomically (temporary file, fsync, rename, fsync the directory); mode 0644. */
export async function writeMapFile(path: string, contents: MapFileContents): Promise<void> {
  const bytes = encodeMapFile(contents);
  await writeFileDurably(path, bytes, 0o644).catch((error: unknown) => {
    throw fromSystemError(error, 'write map file', path);
  });
}

/** Reads and checks a map file; every problem is one TidemarkError naming the file. */
export async function readMapFile(path: string): Promise<MapFileContents> {
  let bytes: Buffer;
  try {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      if (size > mapFileBytesMax) throw damaged(path, `${formatBytes(size)}, larger than any map file (at most ${formatBytes(mapFileBytesMax)})`);
      bytes = Buffer.alloc(size);
      const { bytesRead } = await handle.read(bytes, 0, size, 0);
      bytes = bytes.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw fromSystemError(error, 'read map file', path);
  }
  return decodeMapFile(path, bytes);
}

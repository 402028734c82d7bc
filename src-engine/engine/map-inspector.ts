// The console's map inspector: a pair's map by name (pair-maps.ts, the same table `tidemark map`
// reads) or a map of an opened .tmmap file, its runs with byte offsets, and the set operations
// of two maps compared (docs/console.md "Map inspector").

import { assert } from '../assert';
import { Bitset } from '../bitmap';
import { TidemarkError } from '../errors';
import { combineMaps, decodeMapFile, mapRuns, runsInBytes, summarizeMap, type MapFileContents, type MapRun, type MapRunBytes } from '../maps';
import type { EndpointResolver, PairEndpoints, PairStore } from '../replication';
import { pairMapSources, requirePairMapName } from './pair-maps';

/** Where a map comes from: one of a pair's maps, or one map of a file opened in this engine. */
export type MapSourceRef = { readonly pair: string; readonly which: string } | { readonly fileId: number; readonly map: string };

export const mapCompareOperations = ['union', 'intersection', 'a-minus-b', 'b-minus-a'] as const;
export type MapCompareOperation = (typeof mapCompareOperations)[number];

export interface OpenedMapFile {
  readonly fileId: number;
  readonly fileName: string;
  readonly pair: { readonly name: string; readonly pairId: string };
  readonly regionCount: number;
  readonly regionBytes: number;
  readonly volumeBytes: number;
  readonly createdAt: string;
  readonly maps: readonly { readonly name: string; readonly setCount: number }[];
}

interface LoadedMap {
  readonly label: string;
  readonly bits: Bitset;
  readonly regionBytes: number;
  readonly volumeBytes: number;
}

export interface MapInspection {
  readonly label: string;
  readonly regionCount: number;
  readonly regionBytes: number;
  readonly volumeBytes: number;
  readonly bits: Bitset;
  readonly setCount: number;
  readonly bytes: number;
  readonly runCount: number;
  readonly largestRun: MapRun | null;
  /** The first `runsMax` runs with their byte ranges. */
  readonly runs: readonly MapRunBytes[];
  /** Two maps compared: each operand's count and every set operation's. */
  readonly comparison: {
    readonly a: { readonly label: string; readonly setCount: number };
    readonly b: { readonly label: string; readonly setCount: number };
    readonly operation: MapCompareOperation;
    readonly counts: Readonly<Record<MapCompareOperation, number>>;
  } | null;
}

/** Files kept open at once (the oldest is forgotten first): each holds at most 16 maps. */
const openFilesMax = 8;
/** Runs listed with their offsets (the heatmap shows every region). */
export const inspectorRunsMax = 1000;

export class MapInspector {
  private readonly files = new Map<number, { summary: OpenedMapFile; contents: MapFileContents }>();
  private nextFileId = 1;

  constructor(
    private readonly store: PairStore,
    private readonly resolver: EndpointResolver & { endpoints(record: Awaited<ReturnType<PairStore['require']>>): Promise<PairEndpoints> },
  ) {}

  /** Decodes a .tmmap file's bytes as untrusted input (one-line errors naming the file) and keeps it for `inspect`. */
  openFile(fileName: string, bytes: Buffer): OpenedMapFile {
    const contents = decodeMapFile(fileName, bytes);
    const fileId = this.nextFileId++;
    const summary: OpenedMapFile = {
      fileId,
      fileName,
      pair: contents.pair,
      regionCount: contents.regionCount,
      regionBytes: contents.regionBytes,
      volumeBytes: contents.volumeBytes,
      createdAt: contents.createdAt,
      maps: contents.maps.map((m) => ({ name: m.name, setCount: m.bits.popcount() })),
    };
    this.files.set(fileId, { summary, contents });
    for (const id of [...this.files.keys()].slice(0, Math.max(0, this.files.size - openFilesMax))) this.files.delete(id);
    assert(this.files.size <= openFilesMax, 'map files kept open are bounded');
    return summary;
  }

  openedFiles(): OpenedMapFile[] {
    return [...this.files.values()].map((f) => f.summary);
  }

  async inspect(source: MapSourceRef, compare?: { readonly source: MapSourceRef; readonly operation: MapCompareOperation }): Promise<MapInspection> {
    const a = await this.load(source);
    if (!compare) return inspection(a, a.bits, null);
    const b = await this.load(compare.source);
    if (a.regionBytes !== b.regionBytes) {
      throw new TidemarkError(
        'SIZE_MISMATCH',
        `cannot compare ${a.label} (regions of ${a.regionBytes} bytes) with ${b.label} (regions of ${b.regionBytes} bytes)`,
        'compare maps of one pair, or of pairs with the same region size',
      );
    }
    const results: Record<MapCompareOperation, Bitset> = {
      union: combineMaps('union', a.bits, b.bits),
      intersection: combineMaps('intersection', a.bits, b.bits),
      'a-minus-b': combineMaps('difference', a.bits, b.bits),
      'b-minus-a': combineMaps('difference', b.bits, a.bits),
    };
    const counts = Object.fromEntries(mapCompareOperations.map((op) => [op, results[op].popcount()])) as Record<MapCompareOperation, number>;
    assert(counts.union === counts.intersection + counts['a-minus-b'] + counts['b-minus-a'], 'a union is its intersection and both differences');
    return inspection(a, results[compare.operation], {
      a: { label: a.label, setCount: a.bits.popcount() },
      b: { label: b.label, setCount: b.bits.popcount() },
      operation: compare.operation,
      counts,
    });
  }

  private async load(source: MapSourceRef): Promise<LoadedMap> {
    if ('fileId' in source) {
      const file = this.files.get(source.fileId);
      if (!file) throw new TidemarkError('NOT_FOUND', `map file #${source.fileId} is not open in this console`, 'open the file again');
      const map = file.contents.maps.find((m) => m.name === source.map);
      if (!map) {
        throw new TidemarkError(
          'NOT_FOUND',
          `map file ${file.summary.fileName} holds no map "${source.map}"`,
          `use one of ${file.contents.maps.map((m) => m.name).join(', ')}`,
        );
      }
      return {
        label: `${source.map} of ${file.summary.fileName}`,
        bits: map.bits,
        regionBytes: file.contents.regionBytes,
        volumeBytes: file.contents.volumeBytes,
      };
    }
    const which = requirePairMapName(source.which);
    const record = await this.store.require(source.pair);
    const primary = await this.resolver.resolve(record.primary.volref);
    const [contents, info] = await Promise.all([
      pairMapSources[which]!(primary, record, () => this.resolver.endpoints(record)),
      primary.agent.volumeInfo(primary.path),
    ]);
    const bits = new Bitset(contents.regionCount, contents.words);
    return { label: `${which} of ${record.name}`, bits, regionBytes: record.regionBytes, volumeBytes: info.sizeBytes };
  }
}

function inspection(source: LoadedMap, bits: Bitset, comparison: MapInspection['comparison']): MapInspection {
  const summary = summarizeMap(bits, source.regionBytes);
  return {
    label: source.label,
    regionCount: bits.bitCount,
    regionBytes: source.regionBytes,
    volumeBytes: source.volumeBytes,
    bits,
    setCount: summary.setCount,
    bytes: summary.bytes,
    runCount: summary.runCount,
    largestRun: summary.largestRun,
    runs: runsInBytes(mapRuns(bits, inspectorRunsMax), source.regionBytes, source.volumeBytes),
    comparison,
  };
}

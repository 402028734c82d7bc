// `tidemark map NAME --which MAP [--png FILE] [--export FILE]` and `map --open FILE [--which MAP]`
// (docs/map-format.md): a pair's map or a saved map file as counts and runs, a PNG heatmap,
// a .tmmap file.

import type { Command } from 'commander';
import { Bitset } from '../bitmap';
import { pairMapNames, pairMapSources, requirePairMapName } from '../engine';
import { TidemarkError } from '../errors';
import { mapRuns, readMapFile, summarizeMap, writeHeatmapPng, writeMapFile, type Heatmap, type MapFileContents, type MapRun, type NamedMap } from '../maps';
import type { PairRecord } from '../replication';
import { formatBytes } from '../size';
import { pairEndpointsOf, pairStoreOf, withAgentPool } from './agents';
import { printResult, type GlobalOptions, type Io } from './output';

interface MapOptions {
  which?: string;
  open?: string;
  png?: string;
  export?: string;
}

/** One line per run, the first 20 (as `map` always printed them). */
function runLines(runs: readonly MapRun[]): string[] {
  return [
    ...runs.slice(0, 20).map(([first, count]) => `  ${first}${count > 1 ? `-${first + count - 1}` : ''}`),
    ...(runs.length > 20 ? [`  … ${runs.length - 20} more runs (--json lists them all)`] : []),
  ];
}

function heatmapLine(path: string, heatmap: Heatmap): string {
  const { layout, legend } = heatmap;
  const colours = legend.map((l) => `${l.name} rgb(${l.colour.join(',')})`).join(', ');
  return `wrote heatmap ${path}: ${layout.widthPx}×${layout.heightPx} px, ${layout.widthCells}×${layout.heightCells} cells of ${layout.regionsPerCell} region${layout.regionsPerCell === 1 ? '' : 's'} (${colours})`;
}

async function writeOutputs(options: MapOptions, contents: MapFileContents): Promise<{ lines: string[]; json: Record<string, string> }> {
  const lines: string[] = [];
  const json: Record<string, string> = {};
  if (options.png !== undefined) {
    lines.push(heatmapLine(options.png, await writeHeatmapPng(options.png, contents.maps)));
    json.png = options.png;
  }
  if (options.export !== undefined) {
    await writeMapFile(options.export, contents);
    lines.push(`exported ${contents.maps.map((m) => m.name).join(', ')} to ${options.export} (open it with \`tidemark map --open ${options.export}\`)`);
    json.export = options.export;
  }
  return { lines, json };
}

/** The map, the tracking state's recovered count, and (for an export) the primary's size. */
async function fetchPairMap(io: Io, global: GlobalOptions, record: PairRecord, which: string, needVolumeBytes: boolean) {
  return withAgentPool(io, global, async (pool) => {
    const primary = await pool.resolve(record.primary.volref);
    const map = await pairMapSources[which]!(primary, record, () => pairEndpointsOf(pool, record));
    const state = await primary.agent.trackingState(primary.path, record.pairId);
    const volumeBytes = needVolumeBytes ? (await primary.agent.volumeInfo(primary.path)).sizeBytes : map.regionCount * record.regionBytes;
    return { map, recoveredRegions: state.recoveredRegions, volumeBytes };
  });
}

/** A pair's map as a map file holds it, saved now. */
function pairMapContents(record: PairRecord, map: NamedMap, volumeBytes: number): MapFileContents {
  const { name, pairId, regionBytes } = record;
  return { pair: { name, pairId }, regionBytes, regionCount: map.bits.bitCount, volumeBytes, createdAt: new Date().toISOString(), maps: [map] };
}

async function showPairMap(io: Io, global: GlobalOptions, name: string, options: MapOptions): Promise<void> {
  const which = requirePairMapName(options.which);
  const record = await pairStoreOf(io, global).require(name);
  const fetched = await fetchPairMap(io, global, record, which, options.export !== undefined);
  const bits = new Bitset(fetched.map.regionCount, fetched.map.words);
  const runs = mapRuns(bits);
  const json = {
    pair: name,
    which,
    regions: fetched.map.regionCount,
    regionBytes: record.regionBytes,
    setCount: fetched.map.setCount,
    bytes: fetched.map.setCount * record.regionBytes,
    runs,
    recoveredRegions: fetched.recoveredRegions,
  };
  const written = await writeOutputs(options, pairMapContents(record, { name: which, bits }, fetched.volumeBytes));
  printResult(io, global, { ...json, ...written.json }, () =>
    [
      `${which} of ${name}: ${json.setCount} of ${json.regions} regions set (${formatBytes(json.bytes)}) in ${runs.length} runs`,
      ...runLines(runs),
      ...written.lines,
    ].join('\n'),
  );
}

function selectMaps(path: string, contents: MapFileContents, which: string | undefined): readonly NamedMap[] {
  if (which === undefined) return contents.maps;
  const found = contents.maps.filter((m) => m.name === which);
  if (found.length === 0)
    throw new TidemarkError('USAGE', `map file ${path} holds no map "${which}"`, `use one of ${contents.maps.map((m) => m.name).join(', ')}`);
  return found;
}

function describeMap(map: NamedMap, regionBytes: number) {
  const summary = summarizeMap(map.bits, regionBytes);
  return {
    name: map.name,
    setCount: summary.setCount,
    bytes: summary.bytes,
    runCount: summary.runCount,
    largestRun: summary.largestRun,
    runs: mapRuns(map.bits),
  };
}

function mapText(map: ReturnType<typeof describeMap>, regions: number, regionBytes: number): string[] {
  const largest = map.largestRun ? `, largest ${map.largestRun[1]} regions from ${map.largestRun[0]} (offset ${map.largestRun[0] * regionBytes})` : '';
  return [`${map.name}: ${map.setCount} of ${regions} regions set (${formatBytes(map.bytes)}) in ${map.runCount} runs${largest}`, ...runLines(map.runs)];
}

async function showMapFile(io: Io, global: GlobalOptions, path: string, options: MapOptions): Promise<void> {
  const file = await readMapFile(path);
  const selected = { ...file, maps: selectMaps(path, file, options.which) };
  const maps = selected.maps.map((m) => describeMap(m, file.regionBytes));
  const written = await writeOutputs(options, selected);
  const json = {
    file: path,
    pair: file.pair.name,
    pairId: file.pair.pairId,
    regions: file.regionCount,
    regionBytes: file.regionBytes,
    volumeBytes: file.volumeBytes,
    createdAt: file.createdAt,
    maps,
    ...written.json,
  };
  printResult(io, global, json, () =>
    [
      `map file ${path}: pair ${file.pair.name} (${file.pair.pairId}), ${file.regionCount} regions of ${formatBytes(file.regionBytes)}, saved ${file.createdAt}`,
      ...maps.flatMap((m) => mapText(m, file.regionCount, file.regionBytes)),
      ...written.lines,
    ].join('\n'),
  );
}

export function registerMapCommand(program: Command, io: Io, globals: () => GlobalOptions): void {
  program
    .command('map')
    .description(`a pair's tracking map (${pairMapNames.join(', ')}) or a saved map file: counts and runs of set regions, a PNG heatmap, a .tmmap export`)
    .argument('[name]', 'the pair (or --open FILE)')
    .option('--which <map>', `${pairMapNames.join(', ')} (with --open: one of the file's maps; default all)`)
    .option('--open <file>', 'a map file saved with --export, instead of a pair')
    .option('--png <file>', 'write a PNG heatmap of the map(s)')
    .option('--export <file>', 'save the map(s) to a .tmmap file (open it later with --open)')
    .action(async (name: string | undefined, options: MapOptions) => {
      const global = globals();
      if (name !== undefined && options.open !== undefined)
        throw new TidemarkError('USAGE', 'map takes a pair NAME or --open FILE, not both', 'drop one of them');
      if (options.open !== undefined) return showMapFile(io, global, options.open, options);
      if (name === undefined) throw new TidemarkError('USAGE', 'map needs a pair NAME or --open FILE', 'e.g. `tidemark map NAME --which oos`');
      return showPairMap(io, global, name, options);
    });
}

// Public surface of maps/: region-map files (.tmmap, docs/map-format.md), set operations and
// runs of maps, and PNG heatmaps — for `tidemark map` and the console's map inspector.

export {
  readMapFile,
  writeMapFile,
  encodeMapFile,
  decodeMapFile,
  mapFileMagic,
  mapFileFormat,
  mapFileVersion,
  mapFileBytesMax,
  mapFileMapsMax,
  mapFileHeaderBytesMax,
  type MapFileContents,
  type NamedMap,
} from './map-file';
export {
  combineMaps,
  unionOfMaps,
  mapRuns,
  runsInBytes,
  summarizeMap,
  mapSetOperations,
  type MapSetOperation,
  type MapRun,
  type MapRunBytes,
  type MapSummary,
} from './map-ops';
export { encodePng, pngSignature, pngSidePxMax, type RgbImage } from './png';
export {
  heatmapLayout,
  cellFractions,
  tintOf,
  renderHeatmap,
  heatmapPng,
  writeHeatmapPng,
  mapColours,
  heatmapBackground,
  heatmapOutside,
  heatmapTintMin,
  heatmapWidthCellsDefault,
  heatmapHeightCellsMaxDefault,
  heatmapCellPxDefault,
  type Rgb,
  type Heatmap,
  type HeatmapLayer,
  type HeatmapLayout,
  type HeatmapOptions,
} from './heatmap';

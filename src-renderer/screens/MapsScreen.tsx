// The map inspector (docs/console.md "Map inspector"): one of a pair's maps — the same table
// `tidemark map NAME --which` reads — or a map of an exported .tmmap file; its heatmap, runs
// with their byte offsets (a run zooms the heatmap to it), and two maps compared by set
// operation with every operation's count.

import {
  Alert,
  Button,
  Card,
  CardContent,
  FormControlLabel,
  MenuItem,
  Stack,
  Switch,
  Table,
  TableBody,
  TableCell,
  TableHead,
  TableRow,
  TextField,
  ToggleButton,
  ToggleButtonGroup,
  Typography,
} from '@mui/material';
import { useEffect, useMemo, useRef, useState, type ChangeEvent } from 'react';
import type { MapCompareOperationDto, MapFileDto, MapSourceDto, MapViewDto, OverviewDto, PairMapNameDto } from '../../src-main/console-api';
import { consoleApi, toApiError, type ApiError } from '../api';
import { EmptyState } from '../components/EmptyState';
import { ErrorNote } from '../components/ErrorNote';
import { Heatmap } from '../components/Heatmap';
import { formatBytes } from '../format';
import { decodeWords } from '../heatmap/density';

export const pairMapNames: readonly PairMapNameDto[] = ['failback', 'current', 'next', 'oos', 'moos', 'in-flight', 'resync'];

const mapTitles: Record<PairMapNameDto, string> = {
  failback: 'Failback',
  current: 'Current',
  next: 'Next',
  oos: 'OOS',
  moos: 'MOOS',
  'in-flight': 'In flight',
  resync: 'Resync',
};

const operationLabels: Record<MapCompareOperationDto, string> = {
  union: 'A ∪ B',
  intersection: 'A ∩ B',
  'a-minus-b': 'A \\ B',
  'b-minus-a': 'B \\ A',
};

/** Files larger than this are refused before upload: the request must fit web mode's 1 MiB frame (console-schema.ts `mapFileUploadBytesMax`). */
export const mapFileUploadBytesMax = 720 * 1024;

/** The file's bytes as base64, in chunks (a spread of a whole large array overflows the stack). */
export function toBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

function sourceKey(source: MapSourceDto | undefined): string {
  if (!source) return '';
  return 'pair' in source ? `pair:${source.pair}:${source.which}` : `file:${source.fileId}:${source.map}`;
}

function SourcePicker({
  label,
  testId,
  overview,
  files,
  value,
  onChange,
}: {
  label: string;
  testId: string;
  overview: OverviewDto;
  files: readonly MapFileDto[];
  value: MapSourceDto | undefined;
  onChange: (source: MapSourceDto) => void;
}) {
  const kind = !value || 'pair' in value ? 'pair' : 'file';
  const file = value && 'fileId' in value ? files.find((f) => f.fileId === value.fileId) : undefined;
  return (
    <Stack direction="row" spacing={2} sx={{ alignItems: 'center', flexWrap: 'wrap', rowGap: 1 }}>
      <Typography variant="subtitle2" sx={{ minWidth: 20 }}>
        {label}
      </Typography>
      <TextField
        select
        size="small"
        label={`${label}: from`}
        value={value ? ('pair' in value ? `pair:${value.pair}` : `file:${value.fileId}`) : ''}
        onChange={(e) => {
          const [k, id] = [e.target.value.slice(0, 4), e.target.value.slice(5)];
          if (k === 'pair') onChange({ pair: id, which: value && 'pair' in value ? value.which : 'oos' });
          else {
            const f = files.find((x) => String(x.fileId) === id);
            if (f) onChange({ fileId: f.fileId, map: f.maps[0]!.name });
          }
        }}
        sx={{ minWidth: 260 }}
        slotProps={{ htmlInput: { 'data-testid': `${testId}-from` } }}
      >
        {overview.pairs.map((p) => (
          <MenuItem key={p.name} value={`pair:${p.name}`}>
            pair {p.name}
          </MenuItem>
        ))}
        {files.map((f) => (
          <MenuItem key={f.fileId} value={`file:${f.fileId}`}>
            file {f.fileName}
          </MenuItem>
        ))}
      </TextField>
      {value && kind === 'pair' && 'pair' in value && (
        <ToggleButtonGroup
          size="small"
          exclusive
          value={value.which}
          onChange={(_, which: PairMapNameDto | null) => which && onChange({ pair: value.pair, which })}
          aria-label={`${label}: map`}
        >
          {pairMapNames.map((name) => (
            <ToggleButton key={name} value={name} data-testid={`${testId}-which-${name}`}>
              {mapTitles[name]}
            </ToggleButton>
          ))}
        </ToggleButtonGroup>
      )}
      {value && 'fileId' in value && file && (
        <ToggleButtonGroup
          size="small"
          exclusive
          value={value.map}
          onChange={(_, map: string | null) => map && onChange({ fileId: file.fileId, map })}
          aria-label={`${label}: map`}
        >
          {file.maps.map((m) => (
            <ToggleButton key={m.name} value={m.name} data-testid={`${testId}-map-${m.name}`}>
              {m.name} ({m.setCount})
            </ToggleButton>
          ))}
        </ToggleButtonGroup>
      )}
    </Stack>
  );
}

function CompareTable({ comparison }: { comparison: NonNullable<MapViewDto['comparison']> }) {
  return (
    <Table size="small" data-testid="inspector-compare" aria-label="set operations">
      <TableBody>
        <TableRow>
          <TableCell>A = {comparison.a.label}</TableCell>
          <TableCell align="right" data-testid="inspector-compare-a">
            {comparison.a.setCount}
          </TableCell>
        </TableRow>
        <TableRow>
          <TableCell>B = {comparison.b.label}</TableCell>
          <TableCell align="right" data-testid="inspector-compare-b">
            {comparison.b.setCount}
          </TableCell>
        </TableRow>
        {(Object.keys(operationLabels) as MapCompareOperationDto[]).map((op) => (
          <TableRow key={op} selected={op === comparison.operation}>
            <TableCell>{operationLabels[op]}</TableCell>
            <TableCell align="right" data-testid={`inspector-compare-${op}`}>
              {comparison.counts[op]}
            </TableCell>
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}

function RunsTable({ view, onZoom }: { view: MapViewDto; onZoom: (first: number, count: number) => void }) {
  if (view.runs.length === 0) return <Typography variant="body2">No region is set: nothing to list.</Typography>;
  return (
    <>
      <Table size="small" aria-label="runs of set regions">
        <TableHead>
          <TableRow>
            <TableCell>Regions</TableCell>
            <TableCell align="right">Count</TableCell>
            <TableCell align="right">Offset (bytes)</TableCell>
            <TableCell align="right">Length</TableCell>
            <TableCell />
          </TableRow>
        </TableHead>
        <TableBody>
          {view.runs.map((run) => (
            <TableRow key={run.firstRegion} data-testid="inspector-run">
              <TableCell sx={{ fontFamily: 'monospace' }}>
                {run.firstRegion}
                {run.regionCount > 1 ? `–${run.firstRegion + run.regionCount - 1}` : ''}
              </TableCell>
              <TableCell align="right">{run.regionCount}</TableCell>
              <TableCell align="right" sx={{ fontFamily: 'monospace' }}>
                {run.offsetBytes}
              </TableCell>
              <TableCell align="right">{formatBytes(run.lengthBytes)}</TableCell>
              <TableCell>
                <Button
                  size="small"
                  onClick={() => onZoom(run.firstRegion, run.regionCount)}
                  aria-label={`zoom to regions ${run.firstRegion} to ${run.firstRegion + run.regionCount - 1}`}
                >
                  zoom
                </Button>
              </TableCell>
            </TableRow>
          ))}
        </TableBody>
      </Table>
      {view.runCount > view.runs.length && (
        <Typography variant="caption">
          The first {view.runs.length} of {view.runCount} runs are listed; the heatmap shows them all.
        </Typography>
      )}
    </>
  );
}

export function MapsScreen({ overview, initialPair }: { overview: OverviewDto | undefined; initialPair?: string | null }) {
  const firstPair = initialPair ?? overview?.pairs[0]?.name;
  const [a, setA] = useState<MapSourceDto | undefined>(firstPair ? { pair: firstPair, which: 'oos' } : undefined);
  const [b, setB] = useState<MapSourceDto | undefined>();
  const [comparing, setComparing] = useState(false);
  const [operation, setOperation] = useState<MapCompareOperationDto>('intersection');
  const [files, setFiles] = useState<MapFileDto[]>([]);
  const [view, setView] = useState<MapViewDto>();
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<ApiError>();
  /** Kept apart from the view's error: a map loading meanwhile must not hide why a file did not open. */
  const [fileError, setFileError] = useState<ApiError>();
  const [tick, setTick] = useState(0);
  const [focus, setFocus] = useState<{ start: number; regions: number; key: number }>();
  const fileInput = useRef<HTMLInputElement>(null);

  useEffect(() => {
    if (!a && firstPair) setA({ pair: firstPair, which: 'oos' });
  }, [a, firstPair]);

  const compare = comparing && b ? { source: b, operation } : undefined;
  const requestKey = `${sourceKey(a)}|${compare ? `${sourceKey(compare.source)}|${compare.operation}` : ''}|${tick}`;
  useEffect(() => {
    if (!a) return;
    let cancelled = false;
    setLoading(true);
    consoleApi()
      .request('mapView', { source: a, ...(compare ? { compare } : {}) })
      .then(
        (result) => {
          if (cancelled) return;
          setView(result);
          setError(undefined);
        },
        (e: unknown) => {
          if (cancelled) return;
          setView(undefined);
          setError(toApiError(e));
        },
      )
      .finally(() => !cancelled && setLoading(false));
    return () => {
      cancelled = true;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [requestKey]);

  const bits = useMemo(
    () => (view ? { regionCount: view.regionCount, regionBytes: view.regionBytes, words: decodeWords(view.wordsBase64) } : undefined),
    [view],
  );

  const openFile = async (event: ChangeEvent<HTMLInputElement>) => {
    const file = event.target.files?.[0];
    event.target.value = '';
    if (!file) return;
    try {
      if (file.size > mapFileUploadBytesMax) {
        throw new Error(
          `map file ${file.name} is too large to open here (${formatBytes(file.size)}, at most ${formatBytes(mapFileUploadBytesMax)}): inspect it with \`tidemark map --open ${file.name}\``,
        );
      }
      const opened = await consoleApi().request('mapFileOpen', { fileName: file.name, bytesBase64: toBase64(new Uint8Array(await file.arrayBuffer())) });
      setFiles((old) => [...old, opened]);
      setA({ fileId: opened.fileId, map: opened.maps[0]!.name });
      setFileError(undefined);
    } catch (e) {
      setFileError(toApiError(e));
    }
  };

  if (!overview) return null;
  const zoom = (first: number, count: number) => {
    const pad = Math.max(4, count);
    setFocus((f) => ({ start: first - pad, regions: count + 2 * pad, key: (f?.key ?? 0) + 1 }));
  };
  return (
    <Stack spacing={2}>
      <Stack direction="row" sx={{ alignItems: 'center', justifyContent: 'space-between' }}>
        <Typography variant="h5">Map inspector</Typography>
        <Stack direction="row" spacing={1}>
          <Button variant="outlined" onClick={() => setTick((t) => t + 1)} disabled={!a} data-testid="inspector-refresh">
            Refresh
          </Button>
          <Button variant="contained" onClick={() => fileInput.current?.click()} data-testid="inspector-open-file">
            Open map file…
          </Button>
          <input ref={fileInput} type="file" accept=".tmmap" hidden onChange={(e) => void openFile(e)} data-testid="inspector-file-input" />
        </Stack>
      </Stack>
      {!a && (
        <EmptyState title="No map to inspect">
          Create a pair (Pairs screen), or open a map file saved with <code>tidemark map NAME --which MAP --export FILE</code>.
        </EmptyState>
      )}
      {a && (
        <Card variant="outlined">
          <CardContent>
            <Stack spacing={1}>
              <SourcePicker label="A" testId="inspector-a" overview={overview} files={files} value={a} onChange={setA} />
              <FormControlLabel
                control={
                  <Switch
                    checked={comparing}
                    onChange={(e) => setComparing(e.target.checked)}
                    slotProps={{ input: { 'aria-label': 'compare with a second map' } }}
                  />
                }
                label="Compare with a second map"
                data-testid="inspector-compare-toggle"
              />
              {comparing && (
                <>
                  <SourcePicker label="B" testId="inspector-b" overview={overview} files={files} value={b} onChange={setB} />
                  <ToggleButtonGroup
                    size="small"
                    exclusive
                    value={operation}
                    onChange={(_, op: MapCompareOperationDto | null) => op && setOperation(op)}
                    aria-label="set operation"
                  >
                    {(Object.keys(operationLabels) as MapCompareOperationDto[]).map((op) => (
                      <ToggleButton key={op} value={op} data-testid={`inspector-op-${op}`}>
                        {operationLabels[op]}
                      </ToggleButton>
                    ))}
                  </ToggleButtonGroup>
                  {!b && <Typography variant="body2">Pick map B to compare.</Typography>}
                </>
              )}
            </Stack>
          </CardContent>
        </Card>
      )}
      <ErrorNote error={fileError} />
      <ErrorNote error={error} />
      {a && loading && !view && <Typography data-testid="inspector-loading">Loading the map…</Typography>}
      {view && (
        <Stack spacing={1}>
          <Typography variant="body1" data-testid="inspector-count">
            {view.comparison ? `${operationLabels[view.comparison.operation]}: ` : `${view.label}: `}
            {view.setCount} of {view.regionCount} regions set ({formatBytes(view.bytes)}) in {view.runCount} runs
            {view.largestRun ? `, largest ${view.largestRun[1]} regions from ${view.largestRun[0]}` : ''} — regions of {formatBytes(view.regionBytes)}
            {loading ? ' (refreshing…)' : ''}
          </Typography>
          {view.comparison && <CompareTable comparison={view.comparison} />}
          {view.setCount === 0 && <Alert severity="info">No region is set in this map.</Alert>}
          <Heatmap bits={bits} setLabel="set" clearLabel="not set" heightPx={240} focus={focus} />
          <RunsTable view={view} onZoom={zoom} />
        </Stack>
      )}
    </Stack>
  );
}

// Seeding from removable media (seed 001): export a pair's primary (or any volume) into a
// directory on the media — after a free-space check, with progress and ETA, ending with
// "safe to remove the media" and the manifest's SHA-256 — and, at the remote site, verify an
// image, import it into the secondary and resync, the resync's progress and result shown here.
// Directories are typed, or chosen with Browse… (the native chooser; Electron only).
import { Alert, Button, Card, CardContent, LinearProgress, MenuItem, Stack, TextField, Tooltip, Typography } from '@mui/material';
import { useState } from 'react';
import type { ExportPreflightDto, OverviewDto, SeedingTaskDto, SyncStateDto } from '../../src-main/console-api';
import { consoleApi } from '../api';
import { ErrorNote } from '../components/ErrorNote';
import { formatBytes, formatDurationMs } from '../format';
import { useAction, usePolling } from '../hooks';
import { SyncProgressView } from './SyncPanel';

export const browseUnavailable = 'In web mode the browser cannot choose a directory on this machine for the engine: type its path.';

/** Browse…: the native directory chooser in Electron; disabled in web mode, with a tooltip saying why. */
function BrowseButton({
  title,
  current,
  onPicked,
  act,
  testId,
}: {
  title: string;
  current: string;
  onPicked: (dir: string) => void;
  act: Act;
  testId: string;
}) {
  const api = consoleApi();
  const pick = api.pickDirectory?.bind(api);
  if (!pick) {
    return (
      <Tooltip title={browseUnavailable}>
        <span>
          <Button disabled data-testid={testId} aria-label={`Browse… (${browseUnavailable})`}>
            Browse…
          </Button>
        </span>
      </Tooltip>
    );
  }
  const browse = () =>
    act(async () => {
      const dir = await pick({ title, ...(current.trim() ? { defaultPath: current.trim() } : {}) });
      if (dir !== null) onPicked(dir);
    });
  return (
    <Button onClick={() => void browse()} data-testid={testId}>
      Browse…
    </Button>
  );
}

const MiB = 1024 * 1024;
const splitChoices = [
  { bytes: 4095 * MiB, label: '4095 MiB (FAT32, exFAT, NTFS)' },
  { bytes: 1024 * MiB, label: '1 GiB' },
  { bytes: 64 * MiB, label: '64 MiB' },
];

function TaskView({ task, onCancel }: { task: SeedingTaskDto; onCancel: () => void }) {
  const p = task.progress;
  if (task.running) {
    const fraction = p && p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : 0;
    return (
      <Stack spacing={1} data-testid={`task-${task.kind}-running`}>
        <LinearProgress variant={p ? 'determinate' : 'indeterminate'} value={fraction * 100} />
        <Stack direction="row" spacing={2} sx={{ alignItems: 'center' }}>
          <Typography variant="body2" sx={{ flexGrow: 1 }}>
            {p
              ? `${p.phase}: ${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)} at ${formatBytes(p.bytesPerSecond)}/s · ETA ${p.etaMs === null ? '…' : formatDurationMs(p.etaMs)}`
              : 'starting…'}
          </Typography>
          <Button size="small" color="warning" onClick={onCancel}>
            Cancel
          </Button>
        </Stack>
      </Stack>
    );
  }
  if (task.error) {
    return (
      <Alert severity={task.error.code === 'CANCELLED' ? 'warning' : 'error'} data-testid={`task-${task.kind}-error`}>
        {task.error.message} — {task.error.hint}
      </Alert>
    );
  }
  return <TaskResult task={task} />;
}

function TaskResult({ task }: { task: SeedingTaskDto }) {
  const r = task.result ?? {};
  if (task.kind === 'export') {
    return (
      <Alert severity="success" data-testid="task-export-done">
        Exported {String(r.storedRegions)} of {String(r.regions)} regions ({formatBytes(Number(r.bytesStored))}) into {task.dir}. Manifest SHA-256{' '}
        <code>{String(r.manifestSha256)}</code>. Safe to remove the media.
      </Alert>
    );
  }
  if (task.kind === 'verify') {
    const problems = (r.problems as { file: string; kind: string; detail: string }[] | undefined) ?? [];
    return (
      <Alert severity={r.ok ? 'success' : 'error'} data-testid="task-verify-done">
        {r.ok
          ? `The image is intact: ${String(r.regions)} regions, manifest SHA-256 ${String(r.manifestSha256)}.`
          : `${problems.length} problem${problems.length === 1 ? '' : 's'}: ${problems.map((p) => `${p.file}: ${p.kind} (${p.detail})`).join('; ')}`}
      </Alert>
    );
  }
  return (
    <Alert severity="success" data-testid="task-import-done">
      Imported {String(r.regionsTransferred)} regions ({formatBytes(Number(r.bytesTransferred))}) into {task.volume}
      {Number(r.regionsReclaimed) > 0 ? `, ${String(r.regionsReclaimed)} reclaimed` : ''}. Resync the pair to bring it up to date.
    </Alert>
  );
}

function latest(tasks: readonly SeedingTaskDto[] | undefined, kind: SeedingTaskDto['kind']): SeedingTaskDto | undefined {
  return tasks?.find((t) => t.kind === kind);
}

function ExportCard({ overview, tasks, act }: { overview: OverviewDto; tasks: readonly SeedingTaskDto[] | undefined; act: Act }) {
  const [source, setSource] = useState(overview.pairs[0]?.name ?? '');
  const [dir, setDir] = useState('');
  const [splitBytes, setSplitBytes] = useState(splitChoices[0]!.bytes);
  const [preflight, setPreflight] = useState<ExportPreflightDto>();
  const task = latest(tasks, 'export');
  const check = () => act(async () => setPreflight(await consoleApi().request('exportPreflight', { source, dir, splitBytes })));
  return (
    <Card variant="outlined">
      <CardContent>
        <Stack spacing={2}>
          <Typography variant="h6">Export a seed image</Typography>
          <TextField
            label="Source: a pair (its primary) or a volume"
            value={source}
            onChange={(e) => (setSource(e.target.value), setPreflight(undefined))}
            slotProps={{ htmlInput: { 'data-testid': 'export-source', list: 'seeding-pairs' } }}
          />
          <datalist id="seeding-pairs">
            {overview.pairs.map((p) => (
              <option key={p.name} value={p.name} />
            ))}
          </datalist>
          <Stack direction="row" spacing={1} sx={{ alignItems: 'center' }}>
            <TextField
              label="Directory on the media"
              value={dir}
              onChange={(e) => (setDir(e.target.value), setPreflight(undefined))}
              sx={{ flexGrow: 1 }}
              slotProps={{ htmlInput: { 'data-testid': 'export-dir' } }}
            />
            <BrowseButton
              title="Export the seed image into"
              current={dir}
              onPicked={(picked) => (setDir(picked), setPreflight(undefined))}
              act={act}
              testId="export-browse"
            />
          </Stack>
          <TextField select label="Split data files at" value={splitBytes} onChange={(e) => (setSplitBytes(Number(e.target.value)), setPreflight(undefined))}>
            {splitChoices.map((c) => (
              <MenuItem key={c.bytes} value={c.bytes}>
                {c.label}
              </MenuItem>
            ))}
          </TextField>
          {preflight && (
            <Alert severity={preflight.ok ? 'info' : 'error'} data-testid="export-preflight">
              Needs up to {formatBytes(preflight.neededBytes)}; {formatBytes(preflight.availableBytes)} free{preflight.fat ? ' (FAT: files below 4 GiB)' : ''}.
              {preflight.problem ? ` ${preflight.problem}.` : ''}
            </Alert>
          )}
          <Stack direction="row" spacing={2}>
            <Button onClick={() => void check()} disabled={!source || !dir} data-testid="export-check">
              Check the media
            </Button>
            <Button
              variant="contained"
              disabled={!preflight?.ok || task?.running === true}
              onClick={() => void act(() => consoleApi().request('imageExport', { source, dir, splitBytes }))}
              data-testid="export-start"
            >
              Export
            </Button>
          </Stack>
          {task && <TaskView task={task} onCancel={() => void act(() => consoleApi().request('seedingCancel', { id: task.id }))} />}
        </Stack>
      </CardContent>
    </Card>
  );
}

function ImportCard({ overview, tasks, act }: { overview: OverviewDto; tasks: readonly SeedingTaskDto[] | undefined; act: Act }) {
  const [dir, setDir] = useState('');
  const [target, setTarget] = useState('');
  const verifyTask = latest(tasks, 'verify');
  const importTask = latest(tasks, 'import');
  const pairOfTarget = overview.pairs.find((p) => p.secondary === target);
  const imported = importTask && !importTask.running && importTask.result !== null;
  // The resync started here: its progress and result are shown under its button, from the
  // overview (polled twice a second while it is shown), as on the Pairs screen.
  const [resync, setResync] = useState<SyncStateDto>();
  const resyncView = usePolling(() => (resync ? consoleApi().request('overview', {}) : Promise.resolve(undefined)), 500, [resync?.pair, resync?.startedAtMs]);
  const latestSync = resyncView.data?.pairs.find((p) => p.name === resync?.pair)?.sync;
  const resyncState = resync && latestSync && latestSync.startedAtMs >= resync.startedAtMs ? latestSync : resync;
  return (
    <Card variant="outlined">
      <CardContent>
        <Stack spacing={2}>
          <Typography variant="h6">Import a seed image</Typography>
          <Stack direction="row" spacing={1} sx={{ alignItems: 'center' }}>
            <TextField
              label="Image directory"
              value={dir}
              onChange={(e) => setDir(e.target.value)}
              sx={{ flexGrow: 1 }}
              slotProps={{ htmlInput: { 'data-testid': 'import-dir' } }}
            />
            <BrowseButton title="Import the seed image from" current={dir} onPicked={setDir} act={act} testId="import-browse" />
          </Stack>
          <Stack direction="row" spacing={2}>
            <Button onClick={() => void act(() => consoleApi().request('imageVerify', { dir }))} disabled={!dir} data-testid="import-verify">
              Verify the image
            </Button>
          </Stack>
          {verifyTask && <TaskView task={verifyTask} onCancel={() => void act(() => consoleApi().request('seedingCancel', { id: verifyTask.id }))} />}
          <TextField
            select
            label="Into the secondary of"
            value={target}
            onChange={(e) => setTarget(e.target.value)}
            slotProps={{ htmlInput: { 'data-testid': 'import-target' } }}
          >
            {overview.pairs.map((p) => (
              <MenuItem key={p.name} value={p.secondary}>
                {p.name}: {p.secondary}
              </MenuItem>
            ))}
          </TextField>
          <Stack direction="row" spacing={2}>
            <Button
              variant="contained"
              disabled={!dir || !target || importTask?.running === true}
              onClick={() => void act(() => consoleApi().request('imageImport', { dir, target }))}
              data-testid="import-start"
            >
              Import
            </Button>
            {imported && pairOfTarget && (
              <Button
                onClick={() => void act(async () => setResync(await consoleApi().request('syncStart', { pair: pairOfTarget.name, method: 'auto' })))}
                disabled={resyncState?.running === true}
                data-testid="import-resync"
              >
                Resync {pairOfTarget.name}
              </Button>
            )}
          </Stack>
          {importTask && <TaskView task={importTask} onCancel={() => void act(() => consoleApi().request('seedingCancel', { id: importTask.id }))} />}
          {resyncState && (
            <Stack spacing={1} data-testid="import-resync-view">
              <Typography variant="subtitle2">Resync of {resyncState.pair}</Typography>
              <SyncProgressView sync={resyncState} />
              <ErrorNote error={resyncView.error} />
            </Stack>
          )}
        </Stack>
      </CardContent>
    </Card>
  );
}

type Act = (work: () => Promise<unknown>) => Promise<void>;

/** Tasks are asked twice a second while one runs (its progress), every 3 s otherwise, and not while the page is hidden. */
export const seedingPollMs = { running: 500, idle: 3000 } as const;

export function SeedingScreen({ overview }: { overview: OverviewDto | undefined }) {
  const [anyRunning, setAnyRunning] = useState(false);
  const tasks = usePolling(
    () =>
      consoleApi()
        .request('seedingTasks', {})
        .then((list) => {
          setAnyRunning(list.some((t) => t.running));
          return list;
        }),
    anyRunning ? seedingPollMs.running : seedingPollMs.idle,
    [],
    { whileVisible: true },
  );
  const { act, error } = useAction(tasks.refresh);
  if (!overview) return null;
  return (
    <Stack spacing={2}>
      <Typography variant="h5">Seeding</Typography>
      <Typography variant="body2" color="text.secondary">
        Carry a copy of the primary to the remote site on removable media, import it there, and resync only what changed meanwhile.
      </Typography>
      <ErrorNote error={error ?? tasks.error} />
      <ExportCard overview={overview} tasks={tasks.data} act={act} />
      <ImportCard overview={overview} tasks={tasks.data} act={act} />
    </Stack>
  );
}

// A pair's replication: start (with a rate limit), pause, resume and stop, the shipper's
// state, lag, rate and ETA, what a crash of the primary's agent would resend now, the
// protective snapshot, the data path, and a lag chart over the last ten minutes; for a
// periodic pair the cycle under way and the cycles applied, and Run one cycle. Polled at
// ~2 Hz. A pair in a consistency group replicates with its group: Start and Run one cycle
// start the group's run, which every member shows and any member stops.
import { Alert, Box, Button, Card, CardContent, Chip, Stack, TextField, Typography, type ChipProps } from '@mui/material';
import { useEffect, useState } from 'react';
import type { CycleDto, GroupCycleDto, PairDto, ReplicationStateDto, ReplicationViewDto, ShipStateDto } from '../../src-main/console-api';
import { ApiError, consoleApi } from '../api';
import { ErrorNote } from '../components/ErrorNote';
import { LagChart } from '../components/LagChart';
import { formatBytes, formatDurationMs, formatTime } from '../format';
import { useAction, useReplicationView } from '../hooks';

const MiB = 1024 * 1024;

const stateChips: Record<ShipStateDto | 'starting' | 'cycling' | 'between-cycles' | 'paused' | 'stopped', { label: string; color: ChipProps['color'] }> = {
  starting: { label: 'starting', color: 'info' },
  cycling: { label: 'cycle under way', color: 'info' },
  'between-cycles': { label: 'waiting for the next cycle', color: 'success' },
  'catching-up': { label: 'catching up', color: 'warning' },
  shipping: { label: 'shipping', color: 'info' },
  'in-sync': { label: 'in sync', color: 'success' },
  retrying: { label: 'retrying', color: 'error' },
  paused: { label: 'paused', color: 'warning' },
  stopped: { label: 'stopped', color: 'default' },
};

/** What the state chip says: the shipper's state while it runs, `stopped` otherwise. */
const pathText: Record<ReplicationViewDto['dataPath'], string> = {
  local: 'Path in use: local — the primary is on this machine; regions go from it to the secondary.',
  direct: 'Path in use: direct — the primary’s agent writes to the secondary’s over the pair’s own SSH key (restricted to this pair).',
  relayed: 'Path in use: relayed through this console — read from the primary’s agent, written to the secondary’s (`tidemark pair link` makes it direct).',
};

export function replicationPhase(state: ReplicationStateDto | null): keyof typeof stateChips {
  if (state?.paused) return 'paused';
  if (!state?.running) return 'stopped';
  if (state.retrying) return 'retrying';
  if (state.cycleProgress) return 'cycling';
  if (state.cycles.length > 0 || state.lastGroupCycle) return 'between-cycles';
  return state.progress?.state ?? 'starting';
}

/** `onGroupCycle`: called when a group cycle this console ran finishes (the Failover card asks its options again). */
export function ReplicationPanel({ pair, onGroupCycle }: { pair: PairDto; onGroupCycle?: () => void }) {
  const view = useReplicationView(pair.name);
  const groupCycleAt = view.data?.state?.lastGroupCycle?.pointInTime;
  useEffect(() => {
    if (groupCycleAt !== undefined) onGroupCycle?.();
    // eslint-disable-next-line react-hooks/exhaustive-deps -- once per finished cycle, not per render of the caller
  }, [groupCycleAt]);
  const { act, error } = useAction(view.refresh);
  const [limitMiB, setLimitMiB] = useState('');
  const state = view.data?.state ?? null;
  const running = state?.running ?? false;
  const limit = Number(limitMiB);
  const limitValid = limitMiB.trim() === '' || (Number.isFinite(limit) && limit > 0);
  const syncing = pair.sync?.running ?? false;
  const roleChange = view.data?.roleChange ?? null;
  const blocked = syncing || roleChange !== null;
  const continuous = pair.mode === 'continuous';
  const group = view.data?.group ?? null;
  const groupFailedOver = (group?.failedOver.length ?? 0) > 0;

  // One request at a time: a double click must not start two runs.
  const [starting, setStarting] = useState(false);
  const start = async (once: boolean) => {
    setStarting(true);
    try {
      await act(() =>
        consoleApi().request('replicationStart', {
          pair: pair.name,
          ...(limitMiB.trim() === '' ? {} : { limitRateBytesPerSecond: Math.round(limit * MiB) }),
          ...(once ? { once } : {}),
        }),
      );
    } finally {
      setStarting(false);
    }
  };
  const stop = () => act(() => consoleApi().request('replicationStop', { pair: pair.name }));
  const pause = () => act(() => consoleApi().request('replicationPause', { pair: pair.name }));
  const resume = () => act(() => consoleApi().request('replicationResume', { pair: pair.name }));
  const paused = state?.paused ?? false;
  const phase = replicationPhase(state);

  return (
    <Card variant="outlined" data-testid="replication-panel">
      <CardContent>
        <Stack spacing={2}>
          <Stack direction="row" spacing={1} sx={{ alignItems: 'center' }}>
            <Typography variant="h6">Replication</Typography>
            <Chip size="small" label={pair.mode} data-testid="replication-mode" />
            <Chip size="small" label={stateChips[phase].label} color={stateChips[phase].color} data-testid="replication-state" />
          </Stack>
          {!continuous && !group && (
            <Alert severity="info" data-testid="replication-periodic">
              Periodic: each cycle, at the pair’s interval, snapshots the primary, ships what changed into a staging area on the secondary and applies it there,
              so the secondary always holds the primary as of a cycle.
            </Alert>
          )}
          {group && (
            <Stack spacing={1} data-testid="replication-group">
              <Typography variant="body2">
                {pair.name} replicates with consistency group {group.name} ({group.pairs.join(', ')}): every cycle snapshots all their primaries at one instant
                and brings every secondary to it. Start runs the group’s cycles at its interval (the shortest of its pairs’), Run one group cycle runs one;
                either shows on every pair of the group, and Stop on any of them stops it (as <code>tidemark replicate {group.name}</code> does).
              </Typography>
              {groupFailedOver && (
                <Typography variant="body2" color="text.secondary" data-testid="group-cycle-failed-over">
                  {group.failedOver.join(', ')} failed over: the group cycles again once every pair is failed back (<code>tidemark failback {group.name}</code>{' '}
                  fails back the rest, then runs the group’s cycle).
                </Typography>
              )}
            </Stack>
          )}
          <Stack direction={{ xs: 'column', sm: 'row' }} spacing={2} sx={{ alignItems: { sm: 'center' } }}>
            <TextField
              size="small"
              label="Limit (MiB/s)"
              placeholder="no limit"
              value={(running || paused) && state?.limitRateBytesPerSecond ? String(state.limitRateBytesPerSecond / MiB) : limitMiB}
              error={!limitValid}
              disabled={running || paused}
              title={running ? 'the limit is set at start: stop and start again to change it' : undefined}
              onChange={(e) => setLimitMiB(e.target.value)}
              slotProps={{ htmlInput: { inputMode: 'decimal', 'data-testid': 'replication-limit' } }}
              sx={{ width: 170 }}
            />
            {running && (
              <Button variant="outlined" onClick={() => void pause()} data-testid="replication-pause">
                Pause
              </Button>
            )}
            {paused && (
              <Button variant="contained" onClick={() => void resume()} disabled={blocked || groupFailedOver} data-testid="replication-resume">
                Resume
              </Button>
            )}
            {running || paused ? (
              <Button variant="outlined" color="warning" onClick={() => void stop()} data-testid="replication-stop">
                Stop replication
              </Button>
            ) : (
              <>
                <Button
                  variant="contained"
                  onClick={() => void start(false)}
                  disabled={!limitValid || blocked || groupFailedOver || starting}
                  data-testid="replication-start"
                >
                  {group ? 'Start group replication' : 'Start replication'}
                </Button>
                {!continuous && (
                  <Button
                    variant="outlined"
                    onClick={() => void start(true)}
                    disabled={!limitValid || blocked || groupFailedOver || starting}
                    data-testid="replication-once"
                  >
                    {group ? 'Run one group cycle' : 'Run one cycle'}
                  </Button>
                )}
              </>
            )}
            {paused && (
              <Typography variant="body2" color="text.secondary" data-testid="replication-paused-note">
                Paused: nothing ships, writes are still tracked; Resume carries on with the same limit and history.
              </Typography>
            )}
            {syncing && !running && (
              <Typography variant="body2" color="text.secondary">
                A sync is running: replication can start once it is done.
              </Typography>
            )}
            {roleChange && !running && (
              <Typography variant="body2" color="text.secondary" data-testid="replication-role-change">
                A {roleChange} of this pair is running and does the copying: replication can start once it is done.
              </Typography>
            )}
          </Stack>
          {state?.running && state.retrying && (
            <Typography variant="body2" color="error" data-testid="cycle-retrying">
              Retrying since {formatTime(state.retrying.sinceMs)}: {state.retrying.message}
            </Typography>
          )}
          {state?.running && state.cycleProgress && <CycleProgressLine state={state} />}
          {state?.lastGroupCycle && <GroupCycleLine cycle={state.lastGroupCycle} />}
          {!continuous && <CycleHistory cycles={state?.cycles ?? []} />}
          {view.data && <ReplicationFigures view={view.data} regionBytes={pair.regionBytes} />}
          {view.data?.groupError && <ErrorNote error={new ApiError(view.data.groupError)} />}
          {state?.error && <ErrorNote error={new ApiError(state.error)} />}
          <ErrorNote error={error} />
          <ErrorNote error={view.error} />
          {continuous && <LagChart samples={state?.history ?? []} />}
        </Stack>
      </CardContent>
    </Card>
  );
}

/** A periodic pair's applied cycles, newest first. */
function CycleHistory({ cycles }: { cycles: readonly CycleDto[] }) {
  if (cycles.length === 0) {
    return (
      <Typography variant="body2" color="text.secondary" data-testid="cycle-history-empty">
        No cycle applied by this console yet.
      </Typography>
    );
  }
  return (
    <Stack spacing={0.25} data-testid="cycle-history">
      {[...cycles]
        .reverse()
        .slice(0, 10)
        .map((c) => (
          <Typography key={c.cycle} variant="body2" data-testid={`cycle-${c.cycle}`}>
            Cycle {c.cycle}: {c.regionsTransferred} regions ({formatBytes(c.bytesTransferred)}) in {formatDurationMs(c.durationMs)} — the secondary holds the
            primary as of {new Date(c.pointInTime).toLocaleTimeString()}
          </Typography>
        ))}
    </Stack>
  );
}

/** The periodic cycle under way: which pair (a group's member), its phase, regions, rate and ETA. */
function CycleProgressLine({ state }: { state: ReplicationStateDto }) {
  const progress = state.cycleProgress!;
  const shipping = progress.phase === 'shipping';
  const elapsedMs = Math.max(1, Date.now() - (state.cycleStartedAtMs ?? Date.now()));
  const left = progress.regionsTotal - progress.regionsDone;
  const etaMs = progress.regionsDone > 0 && shipping ? (elapsedMs * left) / progress.regionsDone : null;
  // Rate and ETA while shipping only: the other phases move no region bytes over the link.
  const pace = shipping ? `, ${formatBytes((progress.bytesTransferred * 1000) / elapsedMs)}/s · ETA ${etaText(etaMs, left)}` : '';
  const who = state.group ? `Group ${state.group}: ${progress.pair}’s cycle ${progress.cycle}` : `Cycle ${progress.cycle}`;
  return (
    <Typography variant="body2" data-testid="cycle-progress">
      {who} — {progress.phase}, {progress.regionsDone} of {progress.regionsTotal} regions ({formatBytes(progress.bytesTransferred)}
      {pace})
    </Typography>
  );
}

/** A group run's latest cycle: every member's cycle, and the instant they all hold. */
function GroupCycleLine({ cycle }: { cycle: GroupCycleDto }) {
  return (
    <Typography variant="body2" data-testid="group-cycle-result">
      Group {cycle.group}: {cycle.members.map((m) => `${m.pair} cycle ${m.cycle} (${m.regionsTransferred} regions)`).join(', ')} in{' '}
      {formatDurationMs(cycle.durationMs)} — the secondaries hold the primaries as of {new Date(cycle.pointInTime).toLocaleTimeString()}
    </Typography>
  );
}

function ReplicationFigures({ view, regionBytes }: { view: ReplicationViewDto; regionBytes: number }) {
  const { state, tracking } = view;
  const progress = state?.running ? state.progress : null;
  // While the shipper runs its own figures are the freshest; otherwise the primary's tracking.
  const lagRegions = progress ? progress.oosRegions + progress.inFlightRegions : tracking ? tracking.oosRegions + tracking.inFlightRegions : null;
  const lagBytes = progress ? progress.lagBytes : lagRegions === null ? null : lagRegions * regionBytes;
  const oldestMs = progress?.oldestUnshippedMs ?? tracking?.oldestUnshippedMs ?? 0;
  const moosRegions = tracking?.moosRegions ?? progress?.moosRegions ?? null;
  return (
    <Stack spacing={0.5}>
      <Typography variant="body2" data-testid="replication-lag">
        {lagRegions === null || lagBytes === null
          ? 'Lag: unknown (the primary’s tracking is not available)'
          : lagRegions === 0
            ? 'Lag: none — every tracked write is on the secondary'
            : `Lag: ${lagRegions} regions (${formatBytes(lagBytes)}), oldest unshipped write ${formatDurationMs(oldestMs)} old`}
      </Typography>
      <Typography variant="body2" data-testid="replication-rate">
        {state?.running && cycled(state)
          ? 'Rate: per cycle, while one is under way'
          : state?.running
            ? `Rate: ${formatBytes(progress?.bytesPerSecond ?? 0)}/s · ETA ${etaText(progress?.etaMs ?? null, lagRegions ?? 0)}${state.limitRateBytesPerSecond ? ` · limited to ${formatBytes(state.limitRateBytesPerSecond)}/s` : ''}`
            : 'Rate: not shipping'}
      </Typography>
      <ShippedLine state={state} />
      <Box data-testid="replication-crash-cost">
        <Typography variant="body2">
          {moosRegions === null
            ? 'Crash cost now: unknown'
            : `Crash cost now: ${moosRegions} MOOS regions × ${formatBytes(regionBytes)} = ${formatBytes(moosRegions * regionBytes)}`}
        </Typography>
        <Typography variant="caption" color="text.secondary">
          What a crash of the primary’s agent this instant would resend
          {tracking
            ? ` — MOOS, the persisted superset of what is out of sync: durable before a write is acknowledged, predicted up to ${tracking.predictRegions} regions past a new write, trimmed as segments are rewritten.`
            : '.'}
        </Typography>
      </Box>
      <Typography variant="body2" data-testid="replication-protect">
        {!state?.running
          ? 'Protective snapshot: known while replication runs (one left by a stopped catch-up stays on the secondary until the next run is in sync).'
          : progress?.protectSnapshotId
            ? `Protective snapshot held on the secondary (${progress.protectSnapshotId}): catching up writes out of order, so the secondary keeps its last consistent point until in sync.`
            : 'No protective snapshot held: the secondary is in write order.'}
      </Typography>
      <Typography variant="body2" data-testid="replication-path">
        {pathText[view.dataPath]}
      </Typography>
      {view.trackingError && <ErrorNote error={new ApiError(view.trackingError)} />}
    </Stack>
  );
}

function ShippedLine({ state }: { state: ReplicationStateDto | null }) {
  if (!state) return null;
  if (cycled(state)) {
    const regions = state.cycles.reduce((sum, c) => sum + c.regionsTransferred, 0);
    const bytes = state.cycles.reduce((sum, c) => sum + c.bytesTransferred, 0);
    return (
      <Typography variant="body2" data-testid="replication-shipped">
        {`${state.running ? 'Applied' : 'Last run applied'} ${regions} regions (${formatBytes(bytes)}) in ${state.cycles.length} cycles since ${formatTime(state.startedAtMs)}`}
      </Typography>
    );
  }
  const regions = state.running ? (state.progress?.regionsTransferred ?? 0) : (state.summary?.regionsTransferred ?? state.progress?.regionsTransferred ?? 0);
  const bytes = state.running ? (state.progress?.bytesTransferred ?? 0) : (state.summary?.bytesTransferred ?? state.progress?.bytesTransferred ?? 0);
  return (
    <Typography variant="body2" data-testid="replication-shipped">
      {`${state.running ? 'Shipped' : 'Last run shipped'} ${regions} regions (${formatBytes(bytes)}) since ${formatTime(state.startedAtMs)}`}
      {state.summary && state.summary.syncRegionsTransferred !== null ? `, after a sync that sent ${state.summary.syncRegionsTransferred}` : ''}
    </Typography>
  );
}

/** A run of periodic cycles (a pair's, or its group's): its figures are per cycle, not a shipper's. */
function cycled(state: ReplicationStateDto): boolean {
  return state.group !== null || state.cycles.length > 0 || state.cycleProgress !== null;
}

function etaText(etaMs: number | null, lagRegions: number): string {
  if (lagRegions === 0) return '—';
  return etaMs === null ? '…' : formatDurationMs(etaMs);
}

// The Failover card of the Pair detail (docs/failover.md, docs/console.md): Migrate when the
// primary can be reached, a forced Failover when it cannot (both, with the risk explained, when
// it can), Failback once failed over. Each dialog says what will happen and what is at risk, the
// exact regions and bytes to copy with their heatmap; destructive choices are confirmed by
// typing the pair's name. Failback and migrate then run in the background: phase, regions and
// bytes copied, rate and ETA, polled twice a second. A pair in a consistency group fails over
// with its whole group (every secondary at one instant); the dialog, the result and the card say so.

import {
  Alert,
  LinearProgress,
  Button,
  Card,
  CardContent,
  Dialog,
  DialogActions,
  DialogContent,
  DialogContentText,
  DialogTitle,
  FormControlLabel,
  Radio,
  RadioGroup,
  Stack,
  TextField,
  Tooltip,
  Typography,
} from '@mui/material';
import { useEffect, useMemo, useState } from 'react';
import type { FailbackDto, FailoverDto, MigratePlanDto, PairDto, RoleOptionsDto, RoleTaskDto } from '../../src-main/console-api';
import { ApiError, consoleApi, toApiError } from '../api';
import { ErrorNote } from '../components/ErrorNote';
import { Heatmap } from '../components/Heatmap';
import { formatBytes, formatDurationMs } from '../format';
import { useAction } from '../hooks';

const MiB = 2 ** 20;

const riskText: Record<PairDto['mode'], string> = {
  continuous: 'every write acknowledged on the primary and not yet shipped (its OOS/MOOS regions)',
  periodic: 'the cycle in progress and everything written since (the primary’s current and next change maps)',
};

/** Names as a sentence's list: "a", "a and b", "a, b and c". */
function listNames(names: readonly string[]): string {
  return names.length <= 1 ? (names[0] ?? '') : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

/** A failover's outcome in one or two sentences: the pair's, then its group's when the group failed over with it. */
export function failoverResult(r: FailoverDto): string {
  const own = `Failed over: ${r.newPrimary} is the primary (generation ${r.generation}); ${r.oldPrimary} ${r.oldPrimaryReachable ? `was demoted, its ${r.atRiskRegions === null ? '' : `${r.atRiskRegions} `}unshipped regions kept for failback` : 'was unreachable'}${r.rolledBackRegions > 0 ? `; ${r.rolledBackRegions} regions rolled back` : ''}.`;
  if (!r.group) return own;
  const rolled = r.group.rolledForward.map((f) => `${f.pair} (cycle ${f.cycle})`);
  const cycle =
    rolled.length > 0
      ? `, after the group’s cycle was applied from its seal on ${listNames(rolled)}`
      : r.group.abandonedCycle
        ? ' (its last cycle: the cycle in progress, applied nowhere yet, was left)'
        : '';
  return `${own} Consistency group ${r.group.name} failed over with it: the secondaries of ${listNames(r.group.pairs)} were promoted, all holding the same instant of the group${cycle}.`;
}

/** A map as bits for the heatmap, from its runs. */
function bitsOf(plan: { regions: number; regionBytes: number; runs: readonly (readonly [number, number])[] }) {
  const words = new Uint32Array(Math.ceil(plan.regions / 32));
  for (const [first, count] of plan.runs) for (let r = first; r < first + count; r++) words[r >>> 5]! |= 1 << (r & 31);
  return { regionCount: plan.regions, regionBytes: plan.regionBytes, words };
}

function ConfirmName({ pair, value, onChange, testId }: { pair: string; value: string; onChange: (v: string) => void; testId: string }) {
  return (
    <TextField
      fullWidth
      margin="dense"
      label={`Type ${pair} to confirm`}
      value={value}
      onChange={(e) => onChange(e.target.value)}
      slotProps={{ htmlInput: { 'data-testid': testId } }}
    />
  );
}

function FailoverDialog({
  pair,
  options,
  onClose,
  onDone,
}: {
  pair: PairDto;
  options: RoleOptionsDto | undefined;
  onClose: () => void;
  onDone: (result: FailoverDto) => void;
}) {
  const [typed, setTyped] = useState('');
  const { act, error } = useAction(() => undefined);
  const run = () => act(async () => onDone(await consoleApi().request('failover', { pair: pair.name })));
  const otherPairs = options?.group?.pairs.filter((p) => p !== pair.name) ?? [];
  return (
    <Dialog open onClose={onClose} maxWidth="sm" fullWidth>
      <DialogTitle>Fail over {pair.name}</DialogTitle>
      <DialogContent>
        <DialogContentText data-testid="failover-what">
          {pair.secondary} becomes the primary at a new generation: its lock is lifted and it takes writes. {pair.primary} is demoted now if it can be reached;
          otherwise it stays as it is until failback.
        </DialogContentText>
        {options?.group && (
          <Alert severity="warning" sx={{ my: 1 }} data-testid="failover-group">
            {pair.name} is in consistency group {options.group.name}
            {otherPairs.length > 0 ? ` with ${listNames(otherPairs)}` : ''}: Fail over promotes every secondary of the group, all holding the same instant of
            the group, not only {pair.secondary}. Each pair’s primary is demoted or left as it is, and what it had not shipped is at risk, as explained here for{' '}
            {pair.name}.
          </Alert>
        )}
        <Alert severity="warning" sx={{ my: 1 }} data-testid="failover-risk">
          At risk: {riskText[pair.mode]}. Failback later copies the new primary’s data over those regions.
        </Alert>
        {options?.primary.reachable && !options.group && (
          <Alert severity="info" sx={{ my: 1 }} data-testid="failover-prefer-migrate">
            {options.primary.volref} can be reached: Migrate swaps the roles without losing a write. A forced failover demotes it now instead; what it had not
            shipped is kept for failback, not on the new primary.
          </Alert>
        )}
        {options && !options.primary.reachable && (
          <Alert severity="error" sx={{ my: 1 }} data-testid="failover-unreachable">
            {options.primary.volref} cannot be reached ({options.primary.error ?? 'no answer'}): its unshipped writes stay there until failback.
          </Alert>
        )}
        <ConfirmName pair={pair.name} value={typed} onChange={setTyped} testId="failover-confirm-name" />
        {error && <ErrorNote error={error} />}
      </DialogContent>
      <DialogActions>
        <Button onClick={onClose}>Cancel</Button>
        <Button color="error" disabled={typed !== pair.name} onClick={() => void run()} data-testid="failover-confirm">
          Fail over
        </Button>
      </DialogActions>
    </Dialog>
  );
}

function FailbackDialog({ pair, plan, onClose, onDone }: { pair: PairDto; plan: FailbackDto; onClose: () => void; onDone: (task: RoleTaskDto) => void }) {
  const [typed, setTyped] = useState('');
  const [discard, setDiscard] = useState(plan.oldPrimary);
  const [limitMiB, setLimitMiB] = useState('');
  const limit = Number(limitMiB);
  const limitValid = limitMiB.trim() === '' || (Number.isFinite(limit) && limit > 0);
  const { act, error } = useAction(() => undefined);
  const bits = useMemo(() => bitsOf(plan), [plan]);
  const run = () =>
    act(async () =>
      onDone(
        await consoleApi().request('failbackStart', {
          pair: pair.name,
          ...(plan.splitBrain ? { discardChangesOn: discard } : {}),
          ...(limitMiB.trim() === '' ? {} : { limitRateBytesPerSecond: Math.round(limit * MiB) }),
        }),
      ),
    );
  return (
    <Dialog open onClose={onClose} maxWidth="md" fullWidth>
      <DialogTitle>Fail back {pair.name}</DialogTitle>
      <DialogContent>
        <DialogContentText>
          {plan.oldPrimary} is demoted to secondary and receives only the regions that differ; {plan.newPrimary} stays the primary.
        </DialogContentText>
        <Typography variant="body1" sx={{ my: 1 }} data-testid="failback-count">
          Resync map: {plan.resyncRegions} of {plan.regions} regions ({formatBytes(plan.resyncBytes)}) — {plan.failbackRegions} in the failback map (written on
          the new primary since the failover, or handed over by a demoted primary), {plan.unshippedRegions} unshipped on the old primary
        </Typography>
        <Heatmap bits={bits} setLabel="to copy" heightPx={160} />
        {plan.runsTotal > plan.runs.length && (
          <Typography variant="caption">
            The heatmap shows the first {plan.runs.length} of {plan.runsTotal} runs.
          </Typography>
        )}
        {plan.splitBrain && (
          <Alert severity="error" sx={{ my: 1 }} data-testid="failback-split-brain">
            Split brain: {plan.oldPrimary} was written as primary after the failover (last at{' '}
            {new Date(plan.splitBrain.oldPrimaryLastWriteAtMs).toLocaleString()}). Choose whose changes since then are discarded:
            <RadioGroup value={discard} onChange={(e) => setDiscard(e.target.value)}>
              <FormControlLabel value={plan.oldPrimary} control={<Radio />} label={`${plan.oldPrimary} (keep the new primary)`} />
              <FormControlLabel value={plan.newPrimary} control={<Radio />} label={`${plan.newPrimary} (keep the old primary)`} />
            </RadioGroup>
          </Alert>
        )}
        <TextField
          size="small"
          margin="dense"
          label="Limit (MiB/s)"
          placeholder="no limit"
          value={limitMiB}
          error={!limitValid}
          helperText="the copy's rate limit, so a failback over a thin link leaves room for other traffic"
          onChange={(e) => setLimitMiB(e.target.value)}
          slotProps={{ htmlInput: { inputMode: 'decimal', 'data-testid': 'failback-limit' } }}
        />
        <ConfirmName pair={pair.name} value={typed} onChange={setTyped} testId="failback-confirm-name" />
        {error && <ErrorNote error={error} />}
      </DialogContent>
      <DialogActions>
        <Button onClick={onClose}>Cancel</Button>
        <Button color="warning" disabled={typed !== pair.name || !limitValid} onClick={() => void run()} data-testid="failback-confirm">
          Fail back ({plan.resyncRegions} regions)
        </Button>
      </DialogActions>
    </Dialog>
  );
}

function MigrateDialog({ pair, onClose, onDone }: { pair: PairDto; onClose: () => void; onDone: (task: RoleTaskDto) => void }) {
  const [plan, setPlan] = useState<MigratePlanDto>();
  const [planError, setPlanError] = useState<ApiError>();
  const { act, error } = useAction(() => undefined);
  useEffect(() => {
    let cancelled = false;
    consoleApi()
      .request('migratePlan', { pair: pair.name })
      .then(
        (p) => !cancelled && setPlan(p),
        (e: unknown) => !cancelled && setPlanError(toApiError(e)),
      );
    return () => {
      cancelled = true;
    };
  }, [pair.name]);
  const bits = useMemo(() => (plan ? bitsOf({ regions: plan.regions, regionBytes: plan.regionBytes, runs: plan.runs }) : undefined), [plan]);
  const run = () => act(async () => onDone(await consoleApi().request('migrateStart', { pair: pair.name })));
  return (
    <Dialog open onClose={onClose} maxWidth="md" fullWidth>
      <DialogTitle>Migrate {pair.name}</DialogTitle>
      <DialogContent>
        <DialogContentText data-testid="migrate-what">
          A planned, lossless swap: {pair.primary} keeps taking writes while they are shipped (up to 10 s); then its writes are refused while what it has not
          shipped is copied and both sides are verified by signature; {pair.secondary} becomes the primary and {pair.primary} its secondary, replicated the
          other way.
        </DialogContentText>
        <Alert severity="info" sx={{ my: 1 }} data-testid="migrate-risk">
          No acknowledged write is lost. During the pause applications’ writes to {pair.primary} fail (EPERM); afterwards they must write to {pair.secondary}{' '}
          (an NBD client reconnects there). A difference found by the verify stops the migrate before any promotion and keeps {pair.primary} the primary.
        </Alert>
        {!plan && !planError && <Typography data-testid="migrate-loading">Reading the primary’s unshipped regions…</Typography>}
        {planError && <ErrorNote error={planError} />}
        {plan && (
          <>
            <Typography variant="body1" sx={{ my: 1 }} data-testid="migrate-count">
              Unshipped now: {plan.unshippedRegions} of {plan.regions} regions ({formatBytes(plan.unshippedBytes)}), from the primary’s {plan.maps.join(' ∪ ')}{' '}
              — writes until the pause add to it
            </Typography>
            <Heatmap bits={bits} setLabel="unshipped" heightPx={120} />
          </>
        )}
        {error && <ErrorNote error={error} />}
      </DialogContent>
      <DialogActions>
        <Button onClick={onClose}>Cancel</Button>
        <Button variant="contained" disabled={!plan} onClick={() => void run()} data-testid="migrate-confirm">
          Migrate
        </Button>
      </DialogActions>
    </Dialog>
  );
}

const phaseLabels: Record<NonNullable<RoleTaskDto['progress']>['phase'], string> = {
  prepare: 'demoting the old primary and marking the resync map',
  sync: 'syncing first',
  drain: 'draining: shipping while applications write',
  pause: 'writes paused: stopping the primary',
  copy: 'copying',
  verify: 'verifying both sides by signature',
  done: 'done',
  check: 'swapped; comparing the whole volume with the old primary (writes already go to the new primary)',
};

/**
 * A running failback or migrate: phase, regions and bytes, rate and ETA, and Cancel while it
 * may stop (a failback always; a migrate while it drains — the engine refuses later).
 */
export function RoleTaskProgress({ task, onCancel }: { task: RoleTaskDto; onCancel?: () => void }) {
  const p = task.progress;
  const percent = p && p.regionsTotal > 0 ? Math.min(100, (100 * p.regionsTransferred) / p.regionsTotal) : undefined;
  const cancelTitle = task.cancellable
    ? task.kind === 'failback'
      ? 'Stop copying: the resync map is kept, and Fail back again copies only what is left'
      : 'Stop the migrate while it drains: nothing has changed yet'
    : 'Writes are paused on both sides: the migrate finishes on its own in seconds';
  return (
    <Stack spacing={0.5} data-testid="role-task-progress">
      <Stack direction="row" spacing={1} sx={{ alignItems: 'center' }}>
        <Typography variant="body2" data-testid="role-task-line" sx={{ flexGrow: 1 }}>
          {task.kind === 'failback' ? 'Failing back' : 'Migrating'}: {task.cancelling ? 'cancelling' : p ? phaseLabels[p.phase] : 'starting'}
          {p && p.regionsTotal > 0 ? ` — ${p.regionsTransferred} of ${p.regionsTotal} regions` : ''}
          {p
            ? `, ${formatBytes(p.bytesTransferred)} copied at ${formatBytes(p.bytesPerSecond)}/s, ETA ${p.etaMs === null ? 'unknown' : formatDurationMs(p.etaMs)}`
            : ''}
        </Typography>
        {onCancel && (
          <Tooltip title={cancelTitle}>
            <span>
              <Button size="small" onClick={onCancel} disabled={!task.cancellable || task.cancelling} data-testid="role-task-cancel">
                Cancel
              </Button>
            </span>
          </Tooltip>
        )}
      </Stack>
      <LinearProgress variant={percent === undefined ? 'indeterminate' : 'determinate'} value={percent ?? 0} aria-label={`${task.kind} progress`} />
    </Stack>
  );
}

/** What a finished failback or migrate did (or why it stopped), in one sentence. */
export function roleTaskResult(task: RoleTaskDto): string | null {
  if (task.running) return null;
  if (task.failback) {
    const r = task.failback;
    return `Failed back: copied ${r.regionsTransferred} regions (${formatBytes(r.bytesTransferred)}) in ${formatDurationMs(r.durationMs)}; ${r.oldPrimary} is the secondary.`;
  }
  if (task.migrate) {
    const m = task.migrate;
    const migrated = `Migrated: ${m.newPrimary} is the primary (generation ${m.generation}); ${m.drainedRegions} regions drained, ${m.finalRegions} copied while writes were paused for ${formatDurationMs(m.pauseMs)} (${m.pauseMs} ms); ${m.oldPrimary} is the secondary.`;
    if (m.checkDifferingRegions === 0) return migrated;
    const listed = `${m.checkDiffering.slice(0, 10).join(', ')}${m.checkDiffering.length > 10 ? ', …' : ''}`;
    return `${migrated} CHECK FAILED: ${m.checkDifferingRegions} of ${m.checkedRegions} regions of the new primary (as promoted) differ from ${m.oldPrimary}, which holds the pair as it was at the pause (regions ${listed}); nothing was changed — decide which side is right before replicating.`;
  }
  return null;
}

/** `refreshKey`: bumped when something outside this card changed the pair's roles or group (a group cycle run from the Replication panel): the options are asked again. */
export function FailoverPanel({ pair, onChanged, refreshKey = 0 }: { pair: PairDto; onChanged: () => void; refreshKey?: number }) {
  const [dialog, setDialog] = useState<'failover' | 'failback' | 'migrate' | null>(null);
  const [plan, setPlan] = useState<FailbackDto>();
  const [options, setOptions] = useState<RoleOptionsDto>();
  const [optionsError, setOptionsError] = useState<ApiError>();
  const [task, setTask] = useState<RoleTaskDto | null>(null);
  const [result, setResult] = useState<string>();
  const [version, setVersion] = useState(0);
  const { act, error } = useAction(() => undefined);

  // What to offer: asked on open and after every change (it reaches both sides: not polled).
  useEffect(() => {
    let cancelled = false;
    consoleApi()
      .request('roleOptions', { pair: pair.name })
      .then(
        (o) => {
          if (cancelled) return;
          setOptions(o);
          setOptionsError(undefined);
          setTask(o.task);
        },
        (e: unknown) => !cancelled && setOptionsError(toApiError(e)),
      );
    return () => {
      cancelled = true;
    };
  }, [pair.name, version, refreshKey]);

  // A failback or migrate running: its progress twice a second until it ends.
  const running = task?.running ?? false;
  useEffect(() => {
    if (!running) return;
    let cancelled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        const state = await consoleApi().request('roleTask', { pair: pair.name });
        if (cancelled) return;
        setTask(state);
        if (state && !state.running) {
          setResult(roleTaskResult(state) ?? undefined);
          setVersion((v) => v + 1);
          onChanged();
          return;
        }
      } catch (e) {
        if (!cancelled) setOptionsError(toApiError(e));
      }
      if (!cancelled) timer = setTimeout(() => void poll(), 500);
    };
    timer = setTimeout(() => void poll(), 500);
    return () => {
      cancelled = true;
      clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [running, pair.name]);

  const openFailback = () =>
    act(async () => {
      setPlan(await consoleApi().request('failbackPlan', { pair: pair.name }));
      setDialog('failback');
    });
  const started = (t: RoleTaskDto) => {
    setDialog(null);
    setResult(undefined);
    setTask(t);
  };
  const failedOver = options?.failover !== null && options?.failover !== undefined;
  const reachable = options?.primary.reachable ?? false;
  const grouped = options?.group !== null && options?.group !== undefined;
  // A grouped pair: after its failover, and after a failback run here until the group's next cycle (the group is not at one instant again before it).
  const failedBackHere = task?.kind === 'failback' && !task.running && task.error === null;
  const groupNote = grouped && (failedOver || (failedBackHere && task !== null && (options?.group?.lastCycleAtMs ?? 0) < task.startedAtMs));
  const why = !options
    ? 'Checking whether the primary can be reached…'
    : failedOver
      ? `Failed over${options.failover?.forced ? ' (forced)' : ''} at ${new Date(options.failover!.atMs).toLocaleString()}: fail back when ${options.secondary.volref} is back${options.secondary.reachable ? ' (it can be reached now)' : ` (it cannot be reached: ${options.secondary.error ?? 'no answer'})`}.`
      : reachable && options.group
        ? `${options.primary.volref} can be reached: Fail over (forced) demotes it and promotes every secondary of group ${options.group.name}, all holding the same instant of the group (their unshipped writes go to failback); a pair in a consistency group cannot migrate.`
        : reachable
          ? `${options.primary.volref} can be reached: Migrate swaps the roles without losing a write; Fail over forces it (its unshipped writes go to failback).`
          : `${options.primary.volref} cannot be reached (${options.primary.error ?? 'no answer'}): Fail over promotes ${options.secondary.volref}; what the primary had not shipped is at risk until failback.`;
  return (
    <Card variant="outlined">
      <CardContent>
        <Stack spacing={1}>
          <Typography variant="h6">Failover</Typography>
          <Typography variant="body2" data-testid="role-options">
            {why}
          </Typography>
          {groupNote && options?.group && (
            <Alert severity="info" data-testid="failback-group-note">
              {pair.name} is in consistency group {options.group.name}: Fail back here brings back this pair only. Afterwards run{' '}
              <code>tidemark failback {options.group.name}</code> (it fails back the group’s pairs still failed over, then runs one group cycle) or Run one
              group cycle in the Replication panel (or <code>tidemark replicate {options.group.name} --once</code>) once every pair of the group is back, so
              that the group’s secondaries hold one instant again.
            </Alert>
          )}
          {options?.unfinishedMigrate && (
            <Alert severity="warning" data-testid="role-unfinished-migrate">
              A migrate of {pair.name} was interrupted in its pause: both sides refuse writes until it finishes. Migrate again to finish it.
            </Alert>
          )}
          <Stack direction="row" spacing={1}>
            <Button
              variant={reachable && !failedOver && !grouped ? 'contained' : 'outlined'}
              onClick={() => setDialog('migrate')}
              disabled={!options || running || failedOver || (grouped && !options.unfinishedMigrate) || (!reachable && !options.unfinishedMigrate)}
              data-testid="migrate-open"
            >
              Migrate…
            </Button>
            <Button
              variant="outlined"
              color="error"
              onClick={() => setDialog('failover')}
              disabled={!options || running || failedOver}
              data-testid="failover-open"
            >
              {reachable ? 'Fail over (forced)…' : 'Fail over…'}
            </Button>
            <Button variant="outlined" onClick={() => void openFailback()} disabled={!options || running || !failedOver} data-testid="failback-open">
              Fail back…
            </Button>
          </Stack>
          {task?.running && (
            <RoleTaskProgress task={task} onCancel={() => void act(async () => setTask(await consoleApi().request('roleTaskCancel', { pair: pair.name })))} />
          )}
          {result && (
            <Typography variant="body2" data-testid="failover-result">
              {result}
            </Typography>
          )}
          {task && !task.running && task.error && <ErrorNote error={new ApiError(task.error)} />}
          {optionsError && <ErrorNote error={optionsError} />}
          {error && <ErrorNote error={error} />}
        </Stack>
      </CardContent>
      {dialog === 'failover' && (
        <FailoverDialog
          pair={pair}
          options={options}
          onClose={() => setDialog(null)}
          onDone={(r) => {
            setDialog(null);
            setResult(failoverResult(r));
            setVersion((v) => v + 1);
            onChanged();
          }}
        />
      )}
      {dialog === 'failback' && plan && <FailbackDialog pair={pair} plan={plan} onClose={() => setDialog(null)} onDone={started} />}
      {dialog === 'migrate' && <MigrateDialog pair={pair} onClose={() => setDialog(null)} onDone={started} />}
    </Card>
  );
}

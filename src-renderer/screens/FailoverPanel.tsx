// Failover and failback dialogs of the Pair detail (docs/failover.md): what will happen, what
// is at risk, the exact regions and bytes a failback copies with the resync map's heatmap, a
// split brain's choice of survivor, and confirmation by typing the pair's name.

import {
  Alert,
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
  Typography,
} from '@mui/material';
import { useMemo, useState } from 'react';
import type { FailbackDto, FailoverDto, PairDto } from '../../src-main/console-api';
import { consoleApi } from '../api';
import { ErrorNote } from '../components/ErrorNote';
import { Heatmap } from '../components/Heatmap';
import { formatBytes, formatDurationMs } from '../format';
import { useAction } from '../hooks';

const riskText: Record<PairDto['mode'], string> = {
  continuous: 'every write acknowledged on the primary and not yet shipped (its OOS/MOOS regions)',
  periodic: 'the cycle in progress and everything written since (the primary’s current and next change maps)',
};

/** The resync map as bits for the heatmap, from its runs. */
function bitsOf(plan: FailbackDto) {
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

function FailoverDialog({ pair, onClose, onDone }: { pair: PairDto; onClose: () => void; onDone: (result: FailoverDto) => void }) {
  const [typed, setTyped] = useState('');
  const { act, error } = useAction(() => undefined);
  const run = () => act(async () => onDone(await consoleApi().request('failover', { pair: pair.name })));
  return (
    <Dialog open onClose={onClose} maxWidth="sm" fullWidth>
      <DialogTitle>Fail over {pair.name}</DialogTitle>
      <DialogContent>
        <DialogContentText data-testid="failover-what">
          {pair.secondary} becomes the primary at a new generation: its lock is lifted and it takes writes. {pair.primary} is demoted now if it can be reached;
          otherwise it stays as it is until failback.
        </DialogContentText>
        <Alert severity="warning" sx={{ my: 1 }} data-testid="failover-risk">
          At risk: {riskText[pair.mode]}. Failback later copies the new primary’s data over those regions.
        </Alert>
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

function FailbackDialog({ pair, plan, onClose, onDone }: { pair: PairDto; plan: FailbackDto; onClose: () => void; onDone: (result: FailbackDto) => void }) {
  const [typed, setTyped] = useState('');
  const [discard, setDiscard] = useState(plan.oldPrimary);
  const { act, error } = useAction(() => undefined);
  const bits = useMemo(() => bitsOf(plan), [plan]);
  const run = () =>
    act(async () => onDone(await consoleApi().request('failback', { pair: pair.name, ...(plan.splitBrain ? { discardChangesOn: discard } : {}) })));
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
        <ConfirmName pair={pair.name} value={typed} onChange={setTyped} testId="failback-confirm-name" />
        {error && <ErrorNote error={error} />}
      </DialogContent>
      <DialogActions>
        <Button onClick={onClose}>Cancel</Button>
        <Button color="warning" disabled={typed !== pair.name} onClick={() => void run()} data-testid="failback-confirm">
          Fail back ({plan.resyncRegions} regions)
        </Button>
      </DialogActions>
    </Dialog>
  );
}

export function FailoverPanel({ pair, onChanged }: { pair: PairDto; onChanged: () => void }) {
  const [dialog, setDialog] = useState<'failover' | 'failback' | null>(null);
  const [plan, setPlan] = useState<FailbackDto>();
  const [result, setResult] = useState<string>();
  const { act, error } = useAction(() => undefined);
  const openFailback = () =>
    act(async () => {
      setPlan(await consoleApi().request('failbackPlan', { pair: pair.name }));
      setDialog('failback');
    });
  return (
    <Card variant="outlined">
      <CardContent>
        <Stack spacing={1}>
          <Typography variant="h6">Failover</Typography>
          <Stack direction="row" spacing={1}>
            <Button variant="outlined" color="error" onClick={() => setDialog('failover')} data-testid="failover-open">
              Fail over…
            </Button>
            <Button variant="outlined" onClick={() => void openFailback()} data-testid="failback-open">
              Fail back…
            </Button>
          </Stack>
          {result && (
            <Typography variant="body2" data-testid="failover-result">
              {result}
            </Typography>
          )}
          {error && <ErrorNote error={error} />}
        </Stack>
      </CardContent>
      {dialog === 'failover' && (
        <FailoverDialog
          pair={pair}
          onClose={() => setDialog(null)}
          onDone={(r) => {
            setDialog(null);
            setResult(
              `Failed over: ${r.newPrimary} is the primary (generation ${r.generation}); ${r.oldPrimary} ${r.oldPrimaryReachable ? `was demoted, its ${r.atRiskRegions ?? 0} unshipped regions kept for failback` : 'was unreachable'}${r.rolledBackRegions > 0 ? `; ${r.rolledBackRegions} regions rolled back` : ''}.`,
            );
            onChanged();
          }}
        />
      )}
      {dialog === 'failback' && plan && (
        <FailbackDialog
          pair={pair}
          plan={plan}
          onClose={() => setDialog(null)}
          onDone={(r) => {
            setDialog(null);
            setResult(
              `Failed back: copied ${r.regionsTransferred} regions (${formatBytes(r.bytesTransferred)}) in ${formatDurationMs(r.durationMs)}; ${r.oldPrimary} is the secondary.`,
            );
            onChanged();
          }}
        />
      )}
    </Card>
  );
}

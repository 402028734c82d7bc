// The pair wizard: choose the primary and secondary (a path here, or host:/path on a host of
// the Hosts screen), the region size, mode and hash, then a sync method with the bytes each
// method would move; creates the pair and, if asked, starts its first sync.
import {
  Button,
  Checkbox,
  Dialog,
  DialogActions,
  DialogContent,
  DialogTitle,
  FormControlLabel,
  MenuItem,
  Radio,
  Stack,
  Step,
  StepLabel,
  Stepper,
  Table,
  TableBody,
  TableCell,
  TableHead,
  TableRow,
  TextField,
  Typography,
} from '@mui/material';
import { useState } from 'react';
import type { OverviewDto, SyncEstimateDto, SyncMethodDto } from '../../src-main/console-api';
import { consoleApi, toApiError, type ApiError } from '../api';
import { ErrorNote } from '../components/ErrorNote';
import { formatBytes } from '../format';

const steps = ['Volumes', 'Options', 'First sync'];
const regionSizes = [64, 256, 1024, 4096, 16384].map((kib) => kib * 1024);
const namePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

interface Choice {
  name: string;
  primary: string;
  secondary: string;
  regionBytes: number;
  mode: 'continuous' | 'periodic';
  hash: 'xxh3-128' | 'sha256';
  method: SyncMethodDto;
  syncNow: boolean;
}

function VolumesStep({ choice, set, overview }: { choice: Choice; set: (c: Partial<Choice>) => void; overview: OverviewDto }) {
  const free = overview.volumes.filter((v) => v.pair === null);
  return (
    <Stack spacing={2}>
      <TextField
        label="Pair name"
        value={choice.name}
        error={choice.name !== '' && !namePattern.test(choice.name)}
        helperText="letters, digits, '.', '_' or '-'"
        onChange={(e) => set({ name: e.target.value })}
        slotProps={{ htmlInput: { 'data-testid': 'wizard-name' } }}
      />
      {(['primary', 'secondary'] as const).map((side) => (
        <TextField
          key={side}
          label={side === 'primary' ? 'Primary (applications write here)' : 'Secondary (the copy, same size or larger)'}
          value={choice[side]}
          onChange={(e) => set({ [side]: e.target.value })}
          helperText="a path on this machine, or host:/path on a host added on the Hosts screen"
          slotProps={{ htmlInput: { 'data-testid': `wizard-${side}`, list: 'wizard-volumes' } }}
        />
      ))}
      <datalist id="wizard-volumes">
        {free.map((v) => (
          <option key={v.path} value={v.path} />
        ))}
      </datalist>
    </Stack>
  );
}

function OptionsStep({ choice, set }: { choice: Choice; set: (c: Partial<Choice>) => void }) {
  return (
    <Stack spacing={2}>
      <TextField select label="Region size" value={choice.regionBytes} onChange={(e) => set({ regionBytes: Number(e.target.value) })}>
        {regionSizes.map((bytes) => (
          <MenuItem key={bytes} value={bytes}>
            {formatBytes(bytes)}
          </MenuItem>
        ))}
      </TextField>
      <TextField select label="Mode" value={choice.mode} onChange={(e) => set({ mode: e.target.value as Choice['mode'] })}>
        <MenuItem value="continuous">continuous — changes flow as they happen</MenuItem>
        <MenuItem value="periodic">periodic — consistent cycles</MenuItem>
      </TextField>
      <TextField select label="Region signatures" value={choice.hash} onChange={(e) => set({ hash: e.target.value as Choice['hash'] })}>
        <MenuItem value="xxh3-128">xxh3-128 — fast</MenuItem>
        <MenuItem value="sha256">sha256 — collision-resistant</MenuItem>
      </TextField>
    </Stack>
  );
}

function MethodStep({ choice, set, estimate }: { choice: Choice; set: (c: Partial<Choice>) => void; estimate: SyncEstimateDto | undefined }) {
  if (!estimate) return <Typography>Estimating…</Typography>;
  return (
    <Stack spacing={1}>
      <Typography variant="body2">
        {estimate.regions} regions of {formatBytes(estimate.regionBytes)}; written on the primary: {estimate.primaryRealized}, on the secondary:{' '}
        {estimate.secondaryRealized}.
      </Typography>
      <Table size="small" data-testid="wizard-estimates">
        <TableHead>
          <TableRow>
            <TableCell />
            <TableCell>Method</TableCell>
            <TableCell align="right">Data sent (up to)</TableCell>
            <TableCell align="right">Signatures</TableCell>
            <TableCell>How</TableCell>
          </TableRow>
        </TableHead>
        <TableBody>
          {estimate.methods.map((m) => (
            <TableRow key={m.method} hover onClick={() => set({ method: m.method })} data-testid={`estimate-${m.method}`}>
              <TableCell padding="checkbox">
                <Radio checked={choice.method === m.method} size="small" />
              </TableCell>
              <TableCell>{m.method}</TableCell>
              <TableCell align="right" data-testid={`estimate-bytes-${m.method}`}>
                {formatBytes(m.bytesUpTo)}
              </TableCell>
              <TableCell align="right">{m.signatureBytes > 0 ? formatBytes(m.signatureBytes) : '—'}</TableCell>
              <TableCell>{m.note}</TableCell>
            </TableRow>
          ))}
        </TableBody>
      </Table>
      <FormControlLabel control={<Checkbox checked={choice.syncNow} onChange={(e) => set({ syncNow: e.target.checked })} />} label="Start the sync now" />
    </Stack>
  );
}

export function PairWizard({
  open,
  overview,
  onClose,
  onCreated,
}: {
  open: boolean;
  overview: OverviewDto;
  onClose: () => void;
  onCreated: (name: string) => void;
}) {
  const [step, setStep] = useState(0);
  const [choice, setChoice] = useState<Choice>({
    name: '',
    primary: '',
    secondary: '',
    regionBytes: 1024 * 1024,
    mode: 'continuous',
    hash: 'xxh3-128',
    method: 'tardy',
    syncNow: true,
  });
  const [estimate, setEstimate] = useState<SyncEstimateDto>();
  const [error, setError] = useState<ApiError>();
  const [busy, setBusy] = useState(false);
  const set = (change: Partial<Choice>) => setChoice((c) => ({ ...c, ...change }));
  const volumesReady = namePattern.test(choice.name) && choice.primary.trim() !== '' && choice.secondary.trim() !== '';

  const run = async (work: () => Promise<void>) => {
    setBusy(true);
    try {
      await work();
      setError(undefined);
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setBusy(false);
    }
  };
  const next = () =>
    run(async () => {
      if (step === 1) {
        setEstimate(undefined);
        setEstimate(await consoleApi().request('pairEstimate', { primary: choice.primary, secondary: choice.secondary, regionBytes: choice.regionBytes }));
      }
      setStep(step + 1);
    });
  const create = () =>
    run(async () => {
      const { name, primary, secondary, regionBytes, mode, hash } = choice;
      await consoleApi().request('pairCreate', { name, primary, secondary, regionBytes, mode, hash });
      if (choice.syncNow) await consoleApi().request('syncStart', { pair: name, method: choice.method });
      onCreated(name);
      setStep(0);
    });

  return (
    <Dialog open={open} onClose={onClose} maxWidth="md" fullWidth>
      <DialogTitle>New pair</DialogTitle>
      <DialogContent>
        <Stepper activeStep={step} sx={{ mb: 3 }}>
          {steps.map((label) => (
            <Step key={label}>
              <StepLabel>{label}</StepLabel>
            </Step>
          ))}
        </Stepper>
        {step === 0 && <VolumesStep choice={choice} set={set} overview={overview} />}
        {step === 1 && <OptionsStep choice={choice} set={set} />}
        {step === 2 && <MethodStep choice={choice} set={set} estimate={estimate} />}
        <ErrorNote error={error} />
      </DialogContent>
      <DialogActions>
        <Button onClick={onClose}>Cancel</Button>
        {step > 0 && <Button onClick={() => setStep(step - 1)}>Back</Button>}
        {step < 2 ? (
          <Button variant="contained" onClick={() => void next()} disabled={busy || (step === 0 && !volumesReady)} data-testid="wizard-next">
            Next
          </Button>
        ) : (
          <Button variant="contained" onClick={() => void create()} disabled={busy || !estimate} data-testid="wizard-create">
            Create pair
          </Button>
        )}
      </DialogActions>
    </Dialog>
  );
}

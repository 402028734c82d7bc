// The pair wizard: choose the primary and secondary — a host (this machine or one of the Hosts
// screen) and a volume its agent has registered, or a path typed on it —, the region size, mode and hash, then a sync method with the bytes each
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
import type { HostsDto, HostVolumesDto, SyncEstimateDto, SyncMethodDto } from '../../src-main/console-api';
import { consoleApi, toApiError, type ApiError } from '../api';
import { ErrorNote } from '../components/ErrorNote';
import { formatBytes } from '../format';
import { usePolling } from '../hooks';

const steps = ['Volumes', 'Options', 'First sync'];
const regionSizes = [64, 256, 1024, 4096, 16384].map((kib) => kib * 1024);
const namePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

interface Choice {
  name: string;
  regionBytes: number;
  mode: 'continuous' | 'periodic';
  hash: 'xxh3-128' | 'sha256';
  method: SyncMethodDto;
  syncNow: boolean;
}

/** "this machine" in the host menus: a path here (or a volref typed whole, `host:/path`). */
const thisMachine = '';

/**
 * What the wizard passes as a side's volume: the path here, or the VOLREF of a path on a host of
 * the Hosts screen — `host:/path`, or `ssh://host:port/path` when the host's name carries a port
 * or an IPv6 address (`host:2222:/path` would not parse). The engine's volrefOnHost, which the
 * console uses for listed volumes, follows the same rule; a component test holds them together.
 */
export function sideVolref(host: string, path: string): string {
  const trimmed = path.trim();
  if (host === thisMachine || trimmed === '') return trimmed;
  const name = host
    .trim()
    .replace(/^ssh:\/\//, '')
    .replace(/\/$/, '');
  if (/:\d+$/.test(name) || name.startsWith('[') || name.includes('@[')) return `ssh://${name}${trimmed.replace(/%/g, '%25')}`;
  return `${name}:${trimmed}`;
}

interface Side {
  host: string;
  path: string;
}

function SidePicker({ side, value, set, hosts }: { side: 'primary' | 'secondary'; value: Side; set: (v: Side) => void; hosts: HostsDto | undefined }) {
  const host = hosts?.hosts.find((h) => h.name === value.host);
  const listable = value.host === thisMachine || host?.state === 'connected';
  const volumes = usePolling<HostVolumesDto | null>(
    () => (listable ? consoleApi().request('hostVolumes', value.host === thisMachine ? {} : { host: value.host }) : Promise.resolve(null)),
    5000,
    [value.host, listable],
  );
  const list = volumes.data?.host === (value.host === thisMachine ? null : value.host) ? volumes.data.volumes : [];
  const chosen = list.find((v) => v.path === value.path.trim());
  const where = value.host === thisMachine ? 'this machine' : value.host;
  return (
    <Stack spacing={1} data-testid={`wizard-${side}-picker`}>
      <Typography variant="subtitle2">{side === 'primary' ? 'Primary (applications write here)' : 'Secondary (the copy, same size or larger)'}</Typography>
      <Stack direction={{ xs: 'column', sm: 'row' }} spacing={2}>
        <TextField
          select
          label="Host"
          value={value.host}
          onChange={(e) => set({ host: e.target.value, path: '' })}
          sx={{ minWidth: 220 }}
          slotProps={{ htmlInput: { 'data-testid': `wizard-${side}-host` } }}
        >
          <MenuItem value={thisMachine}>this machine</MenuItem>
          {(hosts?.hosts ?? []).map((h) => (
            <MenuItem key={h.name} value={h.name}>
              {h.name}
              {h.state === 'connected' ? '' : ` (${h.state})`}
            </MenuItem>
          ))}
        </TextField>
        <TextField
          select
          label={`Volumes on ${where}`}
          value={chosen ? chosen.path : ''}
          onChange={(e) => set({ ...value, path: e.target.value })}
          disabled={list.length === 0}
          sx={{ flexGrow: 1, minWidth: 260 }}
          helperText={
            !listable
              ? `${value.host} is ${host?.state ?? 'unknown'}: connect it on the Hosts screen to list its volumes, or type a path on it below`
              : volumes.data && list.length === 0
                ? `no volume registered on ${where} yet: type a path below`
                : ' '
          }
          slotProps={{ htmlInput: { 'data-testid': `wizard-${side}-volume` } }}
        >
          {list.map((v) => (
            <MenuItem key={v.path} value={v.path} disabled={v.pair !== null}>
              {v.path} · {formatBytes(v.sizeBytes)}
              {v.pair !== null ? ` · in pair ${v.pair}` : ''}
            </MenuItem>
          ))}
        </TextField>
      </Stack>
      <TextField
        label={value.host === thisMachine ? 'Path (or host:/path)' : `Path on ${value.host}`}
        value={value.path}
        onChange={(e) => set({ ...value, path: e.target.value })}
        helperText={
          value.host === thisMachine
            ? 'a path on this machine, or host:/path on a host added on the Hosts screen'
            : `an absolute path on ${value.host}; the pair uses ${sideVolref(value.host, value.path || '/…')}`
        }
        slotProps={{ htmlInput: { 'data-testid': `wizard-${side}` } }}
      />
      <ErrorNote error={volumes.error} />
    </Stack>
  );
}

function VolumesStep({
  choice,
  set,
  sides,
  setSide,
}: {
  choice: Choice;
  set: (c: Partial<Choice>) => void;
  sides: Record<'primary' | 'secondary', Side>;
  setSide: (side: 'primary' | 'secondary', value: Side) => void;
}) {
  const hosts = usePolling(() => consoleApi().request('hosts', {}), 3000, []);
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
        <SidePicker key={side} side={side} value={sides[side]} set={(v) => setSide(side, v)} hosts={hosts.data} />
      ))}
      <ErrorNote error={hosts.error} />
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

export function PairWizard({ open, onClose, onCreated }: { open: boolean; onClose: () => void; onCreated: (name: string) => void }) {
  const [step, setStep] = useState(0);
  const [sides, setSides] = useState<Record<'primary' | 'secondary', Side>>({
    primary: { host: thisMachine, path: '' },
    secondary: { host: thisMachine, path: '' },
  });
  const primary = sideVolref(sides.primary.host, sides.primary.path);
  const secondary = sideVolref(sides.secondary.host, sides.secondary.path);
  const [choice, setChoice] = useState<Choice>({
    name: '',
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
  const volumesReady = namePattern.test(choice.name) && primary !== '' && secondary !== '';

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
        setEstimate(await consoleApi().request('pairEstimate', { primary, secondary, regionBytes: choice.regionBytes }));
      }
      setStep(step + 1);
    });
  const create = () =>
    run(async () => {
      const { name, regionBytes, mode, hash } = choice;
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
        {step === 0 && <VolumesStep choice={choice} set={set} sides={sides} setSide={(side, value) => setSides((old) => ({ ...old, [side]: value }))} />}
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

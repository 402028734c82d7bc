// A pair's sync: method and rate limit, start and cancel, live progress with rate and ETA,
// the outcome; verify; delete (confirmed by typing the pair's name).
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
  LinearProgress,
  MenuItem,
  Stack,
  TextField,
  Typography,
} from '@mui/material';
import { useState } from 'react';
import type { PairDto, SyncMethodDto, SyncStateDto, VerifyDto } from '../../src-main/console-api';
import { consoleApi } from '../api';
import { ErrorNote } from '../components/ErrorNote';
import { formatBytes, formatDurationMs } from '../format';
import { useAction } from '../hooks';

export const syncMethodLabels: Record<SyncMethodDto | 'auto', string> = {
  auto: 'auto (Tidemark chooses)',
  tardy: 'tardy — copy, then a short snapshot for what changed',
  early: 'early — snapshot first, copy from it',
  full: 'full — every region, no shortcut',
  signature: 'signature — send only regions that differ',
  realized: 'realized — compare written regions, reclaim the rest',
};

/** A sync's live progress (regions, bytes, rate, ETA), then its outcome or error: on the Pairs and Seeding screens. */
export function SyncProgressView({ sync }: { sync: SyncStateDto }) {
  const p = sync.progress;
  if (sync.running) {
    const fraction = p && p.regionsTotal > 0 ? p.regionsDone / p.regionsTotal : 0;
    return (
      <Stack spacing={1} data-testid="sync-progress">
        <LinearProgress variant={p ? 'determinate' : 'indeterminate'} value={fraction * 100} />
        <Typography variant="body2">
          {p
            ? `${p.method}, round ${p.round + 1}, ${p.phase}: ${p.regionsDone} of ${p.regionsTotal} regions · sent ${formatBytes(p.bytesTransferred)} at ${formatBytes(p.bytesPerSecond)}/s · ETA ${p.etaMs === null ? '…' : formatDurationMs(p.etaMs)}${p.marked > 0 ? ` · ${p.marked} regions written meanwhile` : ''}`
            : 'starting…'}
        </Typography>
      </Stack>
    );
  }
  if (sync.summary) {
    const s = sync.summary;
    return (
      <Alert severity="success" data-testid="sync-summary">
        Synced ({s.method}
        {s.resumed ? ', resumed' : ''}): {s.regionsTransferred} of {s.regions} regions sent ({formatBytes(s.bytesTransferred)})
        {s.regionsReclaimed > 0 ? `, ${s.regionsReclaimed} reclaimed` : ''} in {formatDurationMs(s.durationMs)}. The secondary holds the primary as of{' '}
        {new Date(s.pointInTime).toLocaleString()}
        {s.pendingRegions > 0 ? `; ${s.pendingRegions} regions written since go with the next sync.` : '.'}
      </Alert>
    );
  }
  if (sync.error) {
    return (
      <Alert severity={sync.error.code === 'CANCELLED' ? 'warning' : 'error'} data-testid="sync-error">
        {sync.error.message} — {sync.error.hint}
      </Alert>
    );
  }
  return null;
}

export function SyncPanel({ pair, onChanged, onDeleted }: { pair: PairDto; onChanged: () => void; onDeleted: () => void }) {
  const [method, setMethod] = useState<SyncMethodDto | 'auto'>('auto');
  const [limitMiB, setLimitMiB] = useState('');
  const [verified, setVerified] = useState<VerifyDto>();
  const [deleting, setDeleting] = useState(false);
  const [typedName, setTypedName] = useState('');
  const { act, error } = useAction(onChanged);
  const running = pair.sync?.running ?? false;
  const limit = Number(limitMiB);
  const limitValid = limitMiB.trim() === '' || (Number.isFinite(limit) && limit > 0);

  const start = () =>
    act(() =>
      consoleApi().request('syncStart', {
        pair: pair.name,
        method,
        ...(limitMiB.trim() === '' ? {} : { limitRateBytesPerSecond: Math.round(limit * 1024 * 1024) }),
      }),
    );
  const verify = () => act(async () => setVerified(await consoleApi().request('verify', { pair: pair.name })));
  const remove = () =>
    act(async () => {
      await consoleApi().request('pairDelete', { name: pair.name });
      setDeleting(false);
      onDeleted();
    });

  return (
    <Card variant="outlined">
      <CardContent>
        <Stack spacing={2}>
          <Typography variant="h6">Sync</Typography>
          <Typography variant="body2" data-testid="last-sync">
            {pair.lastSync
              ? `Last sync: ${pair.lastSync.method}, finished ${new Date(pair.lastSync.finishedAt).toLocaleString()}`
              : 'Never synced: the secondary does not hold the primary yet.'}
          </Typography>
          <Stack direction={{ xs: 'column', sm: 'row' }} spacing={2} sx={{ alignItems: { sm: 'center' } }}>
            <TextField
              select
              size="small"
              label="Method"
              value={method}
              onChange={(e) => setMethod(e.target.value as SyncMethodDto | 'auto')}
              sx={{ minWidth: 280 }}
              slotProps={{ htmlInput: { 'data-testid': 'sync-method' } }}
            >
              {(Object.keys(syncMethodLabels) as (SyncMethodDto | 'auto')[]).map((m) => (
                <MenuItem key={m} value={m}>
                  {syncMethodLabels[m]}
                </MenuItem>
              ))}
            </TextField>
            <TextField
              size="small"
              label="Limit (MiB/s)"
              placeholder="no limit"
              value={limitMiB}
              error={!limitValid}
              onChange={(e) => setLimitMiB(e.target.value)}
              slotProps={{ htmlInput: { inputMode: 'decimal', 'data-testid': 'sync-limit' } }}
              sx={{ width: 140 }}
            />
            {running ? (
              <Button
                variant="outlined"
                color="warning"
                onClick={() => void act(() => consoleApi().request('syncCancel', { pair: pair.name }))}
                data-testid="sync-cancel"
              >
                Cancel
              </Button>
            ) : (
              <Button variant="contained" onClick={() => void start()} disabled={!limitValid} data-testid="sync-start">
                Sync
              </Button>
            )}
            <Button onClick={() => void verify()} disabled={running} data-testid="verify">
              Verify
            </Button>
            <Button color="error" onClick={() => setDeleting(true)} disabled={running} data-testid="pair-delete">
              Delete pair
            </Button>
          </Stack>
          {pair.sync && <SyncProgressView sync={pair.sync} />}
          {verified && (
            <Alert severity={verified.regionsDiffering === 0 ? 'success' : 'warning'} data-testid="verify-result">
              {verified.regionsDiffering === 0
                ? `All ${verified.regions} regions are identical.`
                : `${verified.regionsDiffering} of ${verified.regions} regions differ (first: ${verified.differing.slice(0, 8).join(', ')}).`}
            </Alert>
          )}
          <ErrorNote error={error} />
        </Stack>
      </CardContent>
      <Dialog open={deleting} onClose={() => setDeleting(false)}>
        <DialogTitle>Delete pair {pair.name}?</DialogTitle>
        <DialogContent>
          <DialogContentText>
            Both agents forget the pair and the secondary takes writes again. No volume data is touched. Type the pair’s name to confirm.
          </DialogContentText>
          <TextField
            autoFocus
            fullWidth
            margin="dense"
            label="Pair name"
            value={typedName}
            onChange={(e) => setTypedName(e.target.value)}
            slotProps={{ htmlInput: { 'data-testid': 'delete-confirm-name' } }}
          />
        </DialogContent>
        <DialogActions>
          <Button onClick={() => setDeleting(false)}>Keep it</Button>
          <Button color="error" disabled={typedName !== pair.name} onClick={() => void remove()} data-testid="delete-confirm">
            Delete
          </Button>
        </DialogActions>
      </Dialog>
    </Card>
  );
}

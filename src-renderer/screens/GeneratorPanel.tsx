// The lab's write generator: start/stop, rate, write size and pattern; lab reset.
import {
  Button,
  Card,
  CardContent,
  Dialog,
  DialogActions,
  DialogContent,
  DialogContentText,
  DialogTitle,
  MenuItem,
  Stack,
  TextField,
  Typography,
} from '@mui/material';
import { useState } from 'react';
import type { GeneratorStateDto, WritePattern } from '../../src-main/console-api';
import { consoleApi } from '../api';
import { ErrorNote } from '../components/ErrorNote';
import { formatBytes } from '../format';
import { useAction } from '../hooks';

export function GeneratorPanel({ generator, onChanged }: { generator: GeneratorStateDto | null; onChanged: () => void }) {
  const [pattern, setPattern] = useState<WritePattern>(generator?.settings.pattern ?? 'random');
  const [rate, setRate] = useState(String(generator?.settings.writesPerSecond ?? 200));
  const [sizeKiB, setSizeKiB] = useState(String((generator?.settings.writeBytes ?? 65536) / 1024));
  const { act, error } = useAction(onChanged);
  const [confirmReset, setConfirmReset] = useState(false);
  const running = generator?.running ?? false;

  const start = () =>
    act(() => consoleApi().request('generatorStart', { pattern, writesPerSecond: Number(rate), writeBytes: Math.round(Number(sizeKiB) * 1024), seed: 1 }));

  return (
    <Card variant="outlined">
      <CardContent>
        <Typography variant="h6" gutterBottom>
          Write generator
        </Typography>
        <Stack direction={{ xs: 'column', sm: 'row' }} spacing={2} sx={{ alignItems: { sm: 'center' } }}>
          <TextField select size="small" label="Pattern" value={pattern} onChange={(e) => setPattern(e.target.value as WritePattern)} sx={{ minWidth: 140 }}>
            <MenuItem value="random">random</MenuItem>
            <MenuItem value="sequential">sequential</MenuItem>
            <MenuItem value="hot-spot">hot-spot</MenuItem>
          </TextField>
          <TextField
            size="small"
            label="Writes/s"
            value={rate}
            onChange={(e) => setRate(e.target.value)}
            slotProps={{ htmlInput: { inputMode: 'numeric', 'data-testid': 'generator-rate' } }}
            sx={{ width: 110 }}
          />
          <TextField
            size="small"
            label="KiB per write"
            value={sizeKiB}
            onChange={(e) => setSizeKiB(e.target.value)}
            slotProps={{ htmlInput: { inputMode: 'numeric' } }}
            sx={{ width: 120 }}
          />
          {running ? (
            <Button variant="contained" color="warning" onClick={() => void act(() => consoleApi().request('generatorStop', {}))} data-testid="generator-stop">
              Stop
            </Button>
          ) : (
            <Button variant="contained" onClick={() => void start()} data-testid="generator-start">
              Start
            </Button>
          )}
          {running && (
            <Button variant="outlined" onClick={() => void start()}>
              Apply
            </Button>
          )}
          <Button color="error" onClick={() => setConfirmReset(true)}>
            Reset lab…
          </Button>
        </Stack>
        <Typography variant="body2" sx={{ mt: 1 }} data-testid="generator-state">
          {generator
            ? `${generator.running ? 'running' : 'stopped'}: ${generator.writes} writes, ${formatBytes(generator.bytesWritten)} written`
            : 'not started'}
        </Typography>
        <ErrorNote error={error} />
      </CardContent>
      <Dialog open={confirmReset} onClose={() => setConfirmReset(false)}>
        <DialogTitle>Reset the lab?</DialogTitle>
        <DialogContent>
          <DialogContentText>The two lab volumes and the lab pair are deleted and created afresh, empty. Nothing outside the lab is touched.</DialogContentText>
        </DialogContent>
        <DialogActions>
          <Button onClick={() => setConfirmReset(false)} autoFocus>
            Cancel
          </Button>
          <Button
            color="error"
            onClick={() => {
              setConfirmReset(false);
              void act(() => consoleApi().request('labReset', {}));
            }}
          >
            Reset
          </Button>
        </DialogActions>
      </Dialog>
    </Card>
  );
}

// Hosts: the machines this console replicates with over SSH. Add one from ~/.ssh/config or by
// address, approve its host key (the full SHA256 fingerprint), answer passphrase or password
// prompts, and see its connection, Node and agent versions and free space. Changed host keys
// are refused by the engine: there is nothing here to click through.
import {
  Alert,
  Autocomplete,
  Button,
  Checkbox,
  Chip,
  Dialog,
  DialogActions,
  DialogContent,
  DialogContentText,
  DialogTitle,
  FormControlLabel,
  Stack,
  Table,
  TableBody,
  TableCell,
  TableContainer,
  TableHead,
  TableRow,
  TextField,
  Typography,
} from '@mui/material';
import { useState, type FormEvent } from 'react';
import type { HostDto, HostQuestionDto, HostsDto, HostStateDto } from '../../src-main/console-api';
import { consoleApi } from '../api';
import { EmptyState } from '../components/EmptyState';
import { ErrorNote } from '../components/ErrorNote';
import { formatBytes } from '../format';
import { useAction, usePolling } from '../hooks';

const stateColor: Record<HostStateDto, 'default' | 'success' | 'warning' | 'error' | 'info'> = {
  idle: 'default',
  connecting: 'info',
  connected: 'success',
  disconnected: 'warning',
  failed: 'error',
};

export function HostsScreen() {
  const hosts = usePolling<HostsDto>(() => consoleApi().request('hosts', {}), 1000, []);
  const { act, error } = useAction(hosts.refresh);
  const [removing, setRemoving] = useState<string | null>(null);
  const asking = hosts.data?.hosts.find((h) => h.question !== null);
  return (
    <Stack spacing={2}>
      <Typography variant="h5">Hosts</Typography>
      <AddHost candidates={hosts.data?.candidates ?? []} onAdd={(name) => act(() => consoleApi().request('hostAdd', { name }))} />
      <ErrorNote error={error ?? hosts.error} />
      {hosts.data && hosts.data.hosts.length === 0 && (
        <EmptyState title="No remote hosts yet">
          Add a host from your ~/.ssh/config or by address (user@host:port). Tidemark shows its key fingerprint for you to approve, then installs its agent in
          ~/.cache/tidemark on the host (Node.js 20 or newer needed there).
        </EmptyState>
      )}
      {hosts.data && hosts.data.hosts.length > 0 && (
        <HostTable hosts={hosts.data.hosts} onConnect={(name) => void act(() => consoleApi().request('hostConnect', { name }))} onRemove={setRemoving} />
      )}
      {asking && asking.question && (
        <QuestionDialog
          key={asking.question.id}
          host={asking}
          question={asking.question}
          onAnswer={(answer) => act(() => consoleApi().request('hostAnswer', { name: asking.name, questionId: asking.question!.id, ...answer }))}
        />
      )}
      <Dialog open={removing !== null} onClose={() => setRemoving(null)}>
        <DialogTitle>Remove host {removing}?</DialogTitle>
        <DialogContent>
          <DialogContentText>
            The console forgets the host and any secret remembered for it. Its volumes and its agent on the host are not touched; its key stays in known_hosts.
          </DialogContentText>
        </DialogContent>
        <DialogActions>
          <Button onClick={() => setRemoving(null)}>Cancel</Button>
          <Button
            color="error"
            data-testid="confirm-remove-host"
            onClick={() => {
              const name = removing!;
              setRemoving(null);
              void act(() => consoleApi().request('hostRemove', { name }));
            }}
          >
            Remove
          </Button>
        </DialogActions>
      </Dialog>
    </Stack>
  );
}

function AddHost({ candidates, onAdd }: { candidates: readonly string[]; onAdd: (name: string) => Promise<void> }) {
  const [name, setName] = useState('');
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!name.trim()) return;
    void onAdd(name.trim()).then(() => setName(''));
  };
  return (
    <Stack direction="row" spacing={1} component="form" onSubmit={submit} aria-label="add host">
      <Autocomplete
        freeSolo
        options={[...candidates]}
        inputValue={name}
        onInputChange={(_e, value) => setName(value)}
        sx={{ width: 420 }}
        renderInput={(params) => (
          <TextField
            {...params}
            size="small"
            label="Host"
            placeholder="alias from ~/.ssh/config, or user@host:port"
            slotProps={{ ...params.slotProps, htmlInput: { ...params.slotProps.htmlInput, 'data-testid': 'host-name' } }}
          />
        )}
      />
      <Button type="submit" variant="contained" disabled={!name.trim()} data-testid="add-host">
        Add host
      </Button>
    </Stack>
  );
}

function HostTable({ hosts, onConnect, onRemove }: { hosts: readonly HostDto[]; onConnect: (name: string) => void; onRemove: (name: string) => void }) {
  return (
    <TableContainer>
      <Table size="small" aria-label="hosts">
        <TableHead>
          <TableRow>
            <TableCell>Host</TableCell>
            <TableCell>State</TableCell>
            <TableCell>Node.js</TableCell>
            <TableCell>Agent</TableCell>
            <TableCell align="right">Free in home</TableCell>
            <TableCell />
          </TableRow>
        </TableHead>
        <TableBody>
          {hosts.map((h) => (
            <HostRow key={h.name} host={h} onConnect={onConnect} onRemove={onRemove} />
          ))}
        </TableBody>
      </Table>
    </TableContainer>
  );
}

function HostRow({ host, onConnect, onRemove }: { host: HostDto; onConnect: (name: string) => void; onRemove: (name: string) => void }) {
  const retryable = host.state === 'failed' || host.state === 'disconnected' || host.state === 'idle';
  return (
    <>
      <TableRow data-testid="host-row" data-host={host.name}>
        <TableCell>
          <Typography variant="body2">{host.name}</Typography>
          {host.target && host.target !== host.name && (
            <Typography variant="caption" color="text.secondary" sx={{ fontFamily: 'monospace' }}>
              {host.target}
            </Typography>
          )}
        </TableCell>
        <TableCell>
          <Chip
            size="small"
            label={host.question ? 'waiting for you' : host.state}
            color={host.question ? 'warning' : stateColor[host.state]}
            data-testid="host-state"
          />
        </TableCell>
        <TableCell>{host.nodeVersion ?? '—'}</TableCell>
        <TableCell>{host.agentVersion ?? '—'}</TableCell>
        <TableCell align="right" title={host.homeDir ?? undefined}>
          {host.homeFreeBytes === null ? '—' : formatBytes(host.homeFreeBytes)}
        </TableCell>
        <TableCell align="right">
          <Button size="small" disabled={!retryable} onClick={() => onConnect(host.name)}>
            {host.connections > 0 ? 'Reconnect' : 'Connect'}
          </Button>
          <Button size="small" color="error" onClick={() => onRemove(host.name)} data-testid="remove-host">
            Remove
          </Button>
        </TableCell>
      </TableRow>
      {host.lastError && host.state !== 'connected' && (
        <TableRow>
          <TableCell colSpan={6} sx={{ borderBottom: 'none', py: 0 }}>
            <Alert severity={host.state === 'failed' ? 'error' : 'warning'} data-testid="host-error">
              {host.lastError.message} — {host.lastError.hint}
            </Alert>
          </TableCell>
        </TableRow>
      )}
    </>
  );
}

type Answer = { approve?: boolean; secret?: string | null; remember?: boolean };

function QuestionDialog({ host, question, onAnswer }: { host: HostDto; question: HostQuestionDto; onAnswer: (answer: Answer) => Promise<void> }) {
  if (question.kind === 'host-key') {
    return (
      <Dialog open aria-labelledby="host-key-title">
        <DialogTitle id="host-key-title">Trust the host key of {question.hostPort}?</DialogTitle>
        <DialogContent>
          <DialogContentText gutterBottom>This host is not in your known_hosts. Its key fingerprint is:</DialogContentText>
          <Typography sx={{ fontFamily: 'monospace', wordBreak: 'break-all', my: 1 }} data-testid="fingerprint">
            {question.fingerprint}
          </Typography>
          <DialogContentText>
            Compare it with the host’s own (run <code>ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub</code> there). Trusting records it in Tidemark’s
            known_hosts.
          </DialogContentText>
        </DialogContent>
        <DialogActions>
          <Button onClick={() => void onAnswer({ approve: false })}>Reject</Button>
          <Button variant="contained" onClick={() => void onAnswer({ approve: true })} data-testid="approve-host-key">
            Trust and connect
          </Button>
        </DialogActions>
      </Dialog>
    );
  }
  return <SecretDialog host={host} question={question} onAnswer={onAnswer} />;
}

function SecretDialog({
  host,
  question,
  onAnswer,
}: {
  host: HostDto;
  question: Exclude<HostQuestionDto, { kind: 'host-key' }>;
  onAnswer: (answer: Answer) => Promise<void>;
}) {
  const [secret, setSecret] = useState('');
  const [remember, setRemember] = useState(false);
  const title = question.kind === 'passphrase' ? 'Key passphrase' : question.kind === 'password' ? 'Password' : 'The host asks';
  return (
    <Dialog open aria-labelledby="secret-title">
      <form
        onSubmit={(event) => {
          event.preventDefault();
          void onAnswer({ secret, remember });
        }}
      >
        <DialogTitle id="secret-title">
          {title} for {host.target ?? host.name}
        </DialogTitle>
        <DialogContent>
          <DialogContentText sx={{ whiteSpace: 'pre-wrap' }}>{question.prompt}</DialogContentText>
          <TextField
            autoFocus
            fullWidth
            margin="dense"
            type={question.echo ? 'text' : 'password'}
            value={secret}
            onChange={(e) => setSecret(e.target.value)}
            slotProps={{ htmlInput: { 'data-testid': 'secret' } }}
          />
          {question.kind !== 'keyboard-interactive' && (
            <FormControlLabel
              control={<Checkbox checked={remember} disabled={question.keychain === null} onChange={(e) => setRemember(e.target.checked)} />}
              label={
                question.keychain
                  ? `Remember it in the OS keychain (${question.keychain})`
                  : 'Kept in memory until the console quits (no OS keychain available)'
              }
            />
          )}
        </DialogContent>
        <DialogActions>
          <Button onClick={() => void onAnswer({ secret: null })}>Cancel</Button>
          <Button type="submit" variant="contained" data-testid="submit-secret">
            Connect
          </Button>
        </DialogActions>
      </form>
    </Dialog>
  );
}

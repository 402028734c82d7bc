// The Pairs screen's consistency groups: each group with its pairs, New group (a name and two
// or more periodic pairs not yet grouped; `tidemark group create`) and Delete group (the pairs
// stay; `tidemark group delete`). A group's cycles run from any of its pairs' Replication panel.
import {
  Alert,
  Button,
  Card,
  CardContent,
  Checkbox,
  Chip,
  Dialog,
  DialogActions,
  DialogContent,
  DialogContentText,
  DialogTitle,
  FormControlLabel,
  FormGroup,
  Stack,
  TextField,
  Typography,
} from '@mui/material';
import { useState } from 'react';
import type { OverviewDto } from '../../src-main/console-api';
import { ApiError, consoleApi, toApiError } from '../api';
import { ErrorNote } from '../components/ErrorNote';
import { useAction } from '../hooks';

/** Periodic pairs in no group: what a new group may take. */
export function groupablePairs(overview: OverviewDto): string[] {
  const grouped = new Set(overview.groups.flatMap((g) => g.pairs));
  return overview.pairs.filter((p) => p.mode === 'periodic' && !grouped.has(p.name)).map((p) => p.name);
}

export function GroupsSection({ overview, onChanged }: { overview: OverviewDto; onChanged: () => void }) {
  const [creating, setCreating] = useState(false);
  const { act, error } = useAction(onChanged);
  const groupable = groupablePairs(overview);
  return (
    <Stack spacing={1} data-testid="groups">
      <Stack direction="row" sx={{ alignItems: 'center', justifyContent: 'space-between' }}>
        <Typography variant="h6">Consistency groups</Typography>
        <Button
          variant="outlined"
          onClick={() => setCreating(true)}
          disabled={groupable.length < 2}
          title={groupable.length < 2 ? 'a group takes two or more periodic pairs that are in no group yet' : undefined}
          data-testid="group-new"
        >
          New group
        </Button>
      </Stack>
      {overview.groupsError && <ErrorNote error={new ApiError(overview.groupsError)} />}
      {overview.groups.length === 0 ? (
        <Typography variant="body2" color="text.secondary" data-testid="groups-empty">
          No groups. A consistency group snapshots the primaries of its periodic pairs at one instant each cycle, so their secondaries hold one point in time
          together — and fail over together.
        </Typography>
      ) : (
        overview.groups.map((g) => (
          <Card key={g.name} variant="outlined" data-testid={`group-${g.name}`}>
            <CardContent>
              <Stack direction="row" spacing={1} sx={{ alignItems: 'center', flexWrap: 'wrap' }}>
                <Typography variant="subtitle1">{g.name}</Typography>
                {g.pairs.map((p) => (
                  <Chip key={p} size="small" label={p} />
                ))}
                <Button
                  size="small"
                  color="warning"
                  onClick={() => void act(() => consoleApi().request('groupDelete', { name: g.name }))}
                  data-testid={`group-delete-${g.name}`}
                >
                  Delete group
                </Button>
              </Stack>
            </CardContent>
          </Card>
        ))
      )}
      <ErrorNote error={error} />
      <GroupDialog
        open={creating}
        groupable={groupable}
        onClose={() => setCreating(false)}
        onCreated={() => {
          setCreating(false);
          onChanged();
        }}
      />
    </Stack>
  );
}

function GroupDialog({ open, groupable, onClose, onCreated }: { open: boolean; groupable: readonly string[]; onClose: () => void; onCreated: () => void }) {
  const [name, setName] = useState('');
  const [chosen, setChosen] = useState<readonly string[]>([]);
  const [error, setError] = useState<ApiError>();
  const [busy, setBusy] = useState(false);
  const picked = chosen.filter((p) => groupable.includes(p));
  const create = async () => {
    setBusy(true);
    try {
      await consoleApi().request('groupCreate', { name: name.trim(), pairs: [...picked] });
      setName('');
      setChosen([]);
      setError(undefined);
      onCreated();
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setBusy(false);
    }
  };
  const toggle = (pair: string) => setChosen((c) => (c.includes(pair) ? c.filter((p) => p !== pair) : [...c, pair]));
  return (
    <Dialog open={open} onClose={onClose} fullWidth maxWidth="sm">
      <DialogTitle>New consistency group</DialogTitle>
      <DialogContent>
        <Stack spacing={2} sx={{ pt: 1 }}>
          <DialogContentText>
            Every cycle of the group snapshots all its pairs’ primaries at one instant (writes to them wait for that instant) and brings every secondary to it.
            The pairs then replicate and fail over only as the group.
          </DialogContentText>
          <TextField label="Group name" value={name} onChange={(e) => setName(e.target.value)} slotProps={{ htmlInput: { 'data-testid': 'group-name' } }} />
          <FormGroup>
            {groupable.map((p) => (
              <FormControlLabel
                key={p}
                control={<Checkbox checked={picked.includes(p)} onChange={() => toggle(p)} />}
                label={p}
                data-testid={`group-pick-${p}`}
              />
            ))}
          </FormGroup>
          {picked.length < 2 && <Alert severity="info">Pick two or more pairs.</Alert>}
          <ErrorNote error={error} />
        </Stack>
      </DialogContent>
      <DialogActions>
        <Button onClick={onClose}>Cancel</Button>
        <Button variant="contained" onClick={() => void create()} disabled={busy || name.trim() === '' || picked.length < 2} data-testid="group-create">
          Create group
        </Button>
      </DialogActions>
    </Dialog>
  );
}

// The Pairs screen's consistency groups: each group with its pairs, New group (a name and two
// or more periodic pairs not yet grouped; `tidemark group create`) and Delete group, confirmed
// (the pairs stay; `tidemark group delete`). A group's cycles run from any of its pairs'
// Replication panel.
import {
  Alert,
  Button,
  Card,
  CardActions,
  CardContent,
  Checkbox,
  Chip,
  Dialog,
  DialogActions,
  DialogContent,
  DialogContentText,
  DialogTitle,
  FormControl,
  FormControlLabel,
  FormGroup,
  FormLabel,
  Stack,
  TextField,
  Tooltip,
  Typography,
} from '@mui/material';
import { useState, type FormEvent } from 'react';
import type { GroupDto, OverviewDto } from '../../src-main/console-api';
import { ApiError, consoleApi, toApiError } from '../api';
import { ErrorNote } from '../components/ErrorNote';

/** The engine's rule for pair and group names (`validatePairName`). */
const groupNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Periodic pairs in no group: what a new group may take. */
export function groupablePairs(overview: OverviewDto): string[] {
  const grouped = new Set(overview.groups.flatMap((g) => g.pairs));
  return overview.pairs.filter((p) => p.mode === 'periodic' && !grouped.has(p.name)).map((p) => p.name);
}

/** Why New group cannot be used now, or null. */
function newGroupBlocked(overview: OverviewDto, groupable: readonly string[]): string | null {
  if (overview.groupsError) return 'a group record cannot be read (see below): which pairs are grouped is not known';
  if (groupable.length < 2) return 'a group takes two or more periodic pairs that are in no group yet';
  return null;
}

export function GroupsSection({ overview, onChanged }: { overview: OverviewDto; onChanged: () => void }) {
  const [creating, setCreating] = useState(false);
  const [deleting, setDeleting] = useState<GroupDto | null>(null);
  const groupable = groupablePairs(overview);
  const blocked = newGroupBlocked(overview, groupable);
  const pairNames = new Set(overview.pairs.map((p) => p.name));
  return (
    <Stack spacing={1} data-testid="groups">
      <Stack direction="row" sx={{ alignItems: 'center', justifyContent: 'space-between' }}>
        <Typography variant="h6">Consistency groups</Typography>
        <Tooltip title={blocked ?? ''}>
          <span>
            <Button variant="outlined" onClick={() => setCreating(true)} disabled={blocked !== null} data-testid="group-new">
              New group
            </Button>
          </span>
        </Tooltip>
      </Stack>
      {overview.groupsError && <ErrorNote error={new ApiError(overview.groupsError)} />}
      {overview.groups.length === 0 && !overview.groupsError ? (
        <Typography variant="body2" color="text.secondary" data-testid="groups-empty">
          No groups. A consistency group snapshots the primaries of its periodic pairs at one instant each cycle, so their secondaries hold one point in time
          together — and fail over together.
        </Typography>
      ) : (
        overview.groups.map((g) => (
          <Card key={g.name} variant="outlined" data-testid={`group-card-${g.name}`}>
            <CardContent sx={{ pb: 0 }}>
              <Stack direction="row" spacing={1} sx={{ alignItems: 'center', flexWrap: 'wrap', rowGap: 1 }}>
                <Typography variant="subtitle1">{g.name}</Typography>
                {g.pairs.map((p) => (
                  <Chip
                    key={p}
                    size="small"
                    label={pairNames.has(p) ? p : `${p} (missing)`}
                    color={pairNames.has(p) ? 'default' : 'error'}
                    title={pairNames.has(p) ? undefined : 'no pair of this name: the group can neither cycle nor fail over — delete the group'}
                  />
                ))}
              </Stack>
            </CardContent>
            <CardActions sx={{ justifyContent: 'flex-end' }}>
              <Button size="small" color="warning" onClick={() => setDeleting(g)} data-testid={`group-delete-${g.name}`}>
                Delete group…
              </Button>
            </CardActions>
          </Card>
        ))
      )}
      {creating && (
        <GroupDialog
          groupable={groupable}
          onClose={() => setCreating(false)}
          onCreated={() => {
            setCreating(false);
            onChanged();
          }}
        />
      )}
      {deleting && (
        <DeleteGroupDialog
          group={deleting}
          onClose={() => setDeleting(null)}
          onDeleted={() => {
            setDeleting(null);
            onChanged();
          }}
        />
      )}
    </Stack>
  );
}

/** Mounted while open: every opening starts empty. */
function GroupDialog({ groupable, onClose, onCreated }: { groupable: readonly string[]; onClose: () => void; onCreated: () => void }) {
  const [name, setName] = useState('');
  const [chosen, setChosen] = useState<readonly string[]>([]);
  const [error, setError] = useState<ApiError>();
  const [busy, setBusy] = useState(false);
  const picked = chosen.filter((p) => groupable.includes(p));
  const trimmed = name.trim();
  const nameValid = groupNamePattern.test(trimmed);
  const ready = nameValid && picked.length >= 2 && !busy;
  const create = async (event?: FormEvent) => {
    event?.preventDefault();
    if (!ready) return;
    setBusy(true);
    try {
      await consoleApi().request('groupCreate', { name: trimmed, pairs: [...picked] });
      onCreated();
    } catch (e) {
      setError(toApiError(e));
      setBusy(false);
    }
  };
  const toggle = (pair: string) => setChosen((c) => (c.includes(pair) ? c.filter((p) => p !== pair) : [...c, pair]));
  return (
    <Dialog open onClose={onClose} fullWidth maxWidth="sm">
      <form onSubmit={(e) => void create(e)}>
        <DialogTitle>New consistency group</DialogTitle>
        <DialogContent>
          <Stack spacing={2} sx={{ pt: 1 }}>
            <DialogContentText>
              Every cycle of the group snapshots all its pairs’ primaries at one instant (writes to them wait for that instant) and brings every secondary to
              it. The pairs then replicate and fail over only as the group.
            </DialogContentText>
            <TextField
              label="Group name"
              value={name}
              autoFocus
              onChange={(e) => setName(e.target.value)}
              error={trimmed !== '' && !nameValid}
              helperText={trimmed !== '' && !nameValid ? '1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit' : ' '}
              slotProps={{ htmlInput: { 'data-testid': 'group-name' } }}
            />
            <FormControl component="fieldset">
              <FormLabel component="legend">Pairs (periodic, in no group)</FormLabel>
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
            </FormControl>
            {picked.length < 2 && <Alert severity="info">Pick two or more pairs.</Alert>}
            <ErrorNote error={error} />
          </Stack>
        </DialogContent>
        <DialogActions>
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="contained" disabled={!ready} data-testid="group-create">
            {busy ? 'Creating…' : 'Create group'}
          </Button>
        </DialogActions>
      </form>
    </Dialog>
  );
}

/** Deleting a group ends what it guaranteed: said before, and asked once. */
function DeleteGroupDialog({ group, onClose, onDeleted }: { group: GroupDto; onClose: () => void; onDeleted: () => void }) {
  const [error, setError] = useState<ApiError>();
  const [busy, setBusy] = useState(false);
  const remove = async () => {
    setBusy(true);
    try {
      await consoleApi().request('groupDelete', { name: group.name });
      onDeleted();
    } catch (e) {
      setError(toApiError(e));
      setBusy(false);
    }
  };
  return (
    <Dialog open onClose={onClose} fullWidth maxWidth="sm">
      <DialogTitle>Delete group {group.name}?</DialogTitle>
      <DialogContent>
        <Stack spacing={2}>
          <DialogContentText data-testid="group-delete-consequences">
            {group.pairs.join(', ')} stay, with their volumes and cycles, and replicate on their own again: their secondaries no longer hold one instant
            together, and each fails over alone. A group failback still owing its closing group cycle no longer runs it.
          </DialogContentText>
          <ErrorNote error={error} />
        </Stack>
      </DialogContent>
      <DialogActions>
        <Button onClick={onClose}>Cancel</Button>
        <Button variant="contained" color="warning" onClick={() => void remove()} disabled={busy} data-testid="group-delete-confirm">
          {busy ? 'Deleting…' : 'Delete group'}
        </Button>
      </DialogActions>
    </Dialog>
  );
}

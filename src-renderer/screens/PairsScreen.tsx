// Pairs: live state of every pair and the consistency groups; a pair's detail shows its sync,
// its replication, its maps as heatmaps and, for the lab, the write generator.
import { Box, Button, Card, CardActionArea, CardContent, Chip, Grid, Stack, ToggleButton, ToggleButtonGroup, Typography } from '@mui/material';
import { useMemo, useState } from 'react';
import type { MapKind, OverviewDto, PairDto } from '../../src-main/console-api';
import { EmptyState } from '../components/EmptyState';
import { ErrorNote } from '../components/ErrorNote';
import { Heatmap } from '../components/Heatmap';
import { formatBytes } from '../format';
import { decodeWords } from '../heatmap/density';
import { useBitmap } from '../hooks';
import { GeneratorPanel } from './GeneratorPanel';
import { GroupsSection } from './GroupsSection';
import { PairWizard } from './PairWizard';
import { FailoverPanel } from './FailoverPanel';
import { ReplicationPanel } from './ReplicationPanel';
import { SyncPanel } from './SyncPanel';
import { TimelinePanel } from './TimelinePanel';

const mapLabels: Record<MapKind, { title: string; set: string }> = {
  oos: { title: 'OOS', set: 'out of sync' },
  moos: { title: 'MOOS', set: 'maybe out of sync' },
  realized: { title: 'Realized', set: 'realized' },
  since: { title: 'Written since', set: "written on the primary since the secondary's point in time" },
  conveyed: { title: 'Conveyed', set: 'conveyed by this console’s sync' },
  current: { title: 'Current', set: 'to ship in the running cycle (and written since its snapshot)' },
  next: { title: 'Next', set: 'written since the last cycle began' },
};

/** The maps a pair's detail offers: a periodic pair's change maps (current, next) are its alone. */
function mapKindsOf(pair: PairDto): MapKind[] {
  const periodicOnly: MapKind[] = ['current', 'next'];
  return (Object.keys(mapLabels) as MapKind[]).filter((kind) => pair.mode === 'periodic' || !periodicOnly.includes(kind));
}

export function PairsScreen({
  overview,
  onChanged,
  onInspectMaps,
}: {
  overview: OverviewDto | undefined;
  onChanged: () => void;
  /** Opens the map inspector on a pair. */
  onInspectMaps?: (pair: string) => void;
}) {
  const [selected, setSelected] = useState<string | null>(null);
  const [wizard, setWizard] = useState(false);
  if (!overview) return null;
  const pair = overview.pairs.find((p) => p.name === selected);
  if (pair) return <PairDetail pair={pair} overview={overview} onBack={() => setSelected(null)} onChanged={onChanged} onInspectMaps={onInspectMaps} />;
  const created = (name: string) => {
    setWizard(false);
    onChanged();
    setSelected(name);
  };
  const wizardDialog = <PairWizard open={wizard} onClose={() => setWizard(false)} onCreated={created} />;
  const newPair = (
    <Button variant="contained" onClick={() => setWizard(true)} data-testid="pair-new">
      New pair
    </Button>
  );
  if (overview.pairs.length === 0) {
    return (
      <>
        <EmptyState title="No pairs yet">
          Create one with New pair (or <code>tidemark pair create</code>); the lab pair appears on first start (or run <code>tidemark lab</code>).
        </EmptyState>
        {newPair}
        {wizardDialog}
      </>
    );
  }
  return (
    <>
      <Stack direction="row" sx={{ alignItems: 'center', justifyContent: 'space-between', mb: 1 }}>
        <Typography variant="h5">Pairs</Typography>
        {newPair}
      </Stack>
      {wizardDialog}
      <Grid container spacing={2}>
        {overview.pairs.map((p) => (
          <Grid key={p.name} size={{ xs: 12, md: 6 }}>
            <Card variant="outlined">
              <CardActionArea onClick={() => setSelected(p.name)} data-testid={`pair-card-${p.name}`} aria-label={`open pair ${p.name}`}>
                <CardContent>
                  <PairSummaryLine pair={p} group={overview.groups.find((g) => g.pairs.includes(p.name))?.name} />
                </CardContent>
              </CardActionArea>
            </Card>
          </Grid>
        ))}
      </Grid>
      <Box sx={{ mt: 3 }}>
        <GroupsSection overview={overview} onChanged={onChanged} />
      </Box>
    </>
  );
}

function PairSummaryLine({ pair, group }: { pair: PairDto; group?: string }) {
  return (
    <Stack spacing={1}>
      <Stack direction="row" spacing={1} sx={{ alignItems: 'center' }}>
        <Typography variant="h6">{pair.name}</Typography>
        <Chip size="small" label={pair.mode} />
        {group && <Chip size="small" variant="outlined" label={`group ${group}`} data-testid={`pair-group-${pair.name}`} />}
        <Chip size="small" label={pair.tracking ? 'tracking' : 'idle'} color={pair.tracking ? 'success' : 'default'} />
      </Stack>
      <Typography variant="body2" sx={{ fontFamily: 'monospace', wordBreak: 'break-all' }}>
        {pair.primary} → {pair.secondary}
      </Typography>
      <Typography variant="body2" data-testid={`pair-counts-${pair.name}`}>
        {pair.regions} regions of {formatBytes(pair.regionBytes)} · OOS {pair.oosRegions} · MOOS {pair.moosRegions} · lag {formatBytes(pair.lagBytes)} ·{' '}
        {pair.writesTracked} writes tracked
      </Typography>
      <Typography variant="body2" color="text.secondary" data-testid={`pair-sync-${pair.name}`}>
        {pair.sync?.running
          ? `syncing: ${pair.sync.progress ? `${pair.sync.progress.regionsDone} of ${pair.sync.progress.regionsTotal} regions (${pair.sync.progress.phase})` : 'starting'}`
          : pair.lastSync
            ? `last sync ${pair.lastSync.method}, ${new Date(pair.lastSync.finishedAt).toLocaleString()}`
            : 'never synced'}
      </Typography>
    </Stack>
  );
}

function PairDetail({
  pair,
  overview,
  onBack,
  onChanged,
  onInspectMaps,
}: {
  pair: PairDto;
  overview: OverviewDto;
  onBack: () => void;
  onChanged: () => void;
  onInspectMaps?: (pair: string) => void;
}) {
  // Bumped after a role change so the timeline reloads; after a group cycle so the Failover card and the timeline do.
  const [roleVersion, setRoleVersion] = useState(0);
  const [groupCycles, setGroupCycles] = useState(0);
  // A pair this console tracks opens on its OOS map, a periodic one on its current change map,
  // another one on what its sync conveys.
  const [which, setWhich] = useState<MapKind>(pair.tracking ? 'oos' : pair.mode === 'periodic' ? 'current' : 'conveyed');
  const bitmap = useBitmap(pair.name, which, 100);
  const bits = useMemo(
    () =>
      bitmap.data ? { regionCount: bitmap.data.regionCount, regionBytes: bitmap.data.regionBytes, words: decodeWords(bitmap.data.wordsBase64) } : undefined,
    [bitmap.data],
  );
  return (
    <Stack spacing={2}>
      <Box>
        <Typography component="button" variant="body2" onClick={onBack} sx={{ border: 0, background: 'none', color: 'primary.main', cursor: 'pointer', p: 0 }}>
          ← all pairs
        </Typography>
      </Box>
      <PairSummaryLine pair={pair} group={overview.groups.find((g) => g.pairs.includes(pair.name))?.name} />
      <SyncPanel
        pair={pair}
        onChanged={onChanged}
        onDeleted={() => {
          onBack();
          onChanged();
        }}
      />
      <ReplicationPanel pair={pair} onGroupCycle={() => setGroupCycles((n) => n + 1)} />
      <FailoverPanel
        pair={pair}
        refreshKey={groupCycles}
        onChanged={() => {
          setRoleVersion((v) => v + 1);
          onChanged();
        }}
      />
      <TimelinePanel pair={pair.name} version={roleVersion + groupCycles} />
      <Stack direction="row" spacing={2} sx={{ alignItems: 'center' }}>
        <ToggleButtonGroup size="small" exclusive value={which} onChange={(_, value: MapKind | null) => value && setWhich(value)} aria-label="map">
          {mapKindsOf(pair).map((kind) => (
            <ToggleButton key={kind} value={kind} data-testid={`map-${kind}`}>
              {mapLabels[kind].title}
            </ToggleButton>
          ))}
        </ToggleButtonGroup>
        <Typography variant="body1" data-testid="map-count">
          {mapLabels[which].title}: {bitmap.data?.setCount ?? '…'} of {bitmap.data?.regionCount ?? '…'} regions {mapLabels[which].set}
        </Typography>
        {onInspectMaps && (
          <Button size="small" onClick={() => onInspectMaps(pair.name)} data-testid="pair-inspect-maps">
            Inspect maps…
          </Button>
        )}
      </Stack>
      <ErrorNote error={bitmap.error} />
      <Heatmap bits={bits} setLabel={mapLabels[which].set} />
      {pair.name === 'lab' && <GeneratorPanel generator={overview.generator} onChanged={onChanged} />}
    </Stack>
  );
}

// A pair's timeline in its detail (docs/console.md "Pair timeline"): creation, every role change
// both members recorded (generation, event, which volume became what, by whom), the last sync,
// a failover not yet failed back, and the periodic cycles this console ran — oldest first.

import { Alert, Button, Card, CardContent, Chip, Stack, Table, TableBody, TableCell, TableHead, TableRow, Typography } from '@mui/material';
import { useEffect, useState } from 'react';
import type { PairTimelineDto, TimelineEntryDto } from '../../src-main/console-api';
import { consoleApi, toApiError, type ApiError } from '../api';
import { ErrorNote } from '../components/ErrorNote';

const kindLabels: Record<TimelineEntryDto['kind'], string> = {
  created: 'created',
  sync: 'sync',
  role: 'role change',
  failover: 'failover',
  cycle: 'cycle',
};

const kindColours: Record<TimelineEntryDto['kind'], 'default' | 'primary' | 'warning' | 'success' | 'info'> = {
  created: 'default',
  sync: 'info',
  role: 'primary',
  failover: 'warning',
  cycle: 'success',
};

/** `version` changes after anything that may add to the timeline (a failover, say): it reloads then. */
export function TimelinePanel({ pair, version }: { pair: string; version: number }) {
  const [timeline, setTimeline] = useState<PairTimelineDto>();
  const [error, setError] = useState<ApiError>();
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let cancelled = false;
    setLoading(true);
    consoleApi()
      .request('pairTimeline', { pair })
      .then(
        (t) => {
          if (cancelled) return;
          setTimeline(t);
          setError(undefined);
        },
        (e: unknown) => !cancelled && setError(toApiError(e)),
      )
      .finally(() => !cancelled && setLoading(false));
    return () => {
      cancelled = true;
    };
  }, [pair, version, tick]);
  return (
    <Card variant="outlined">
      <CardContent>
        <Stack spacing={1}>
          <Stack direction="row" sx={{ alignItems: 'center', justifyContent: 'space-between' }}>
            <Typography variant="h6">Timeline{timeline ? ` — generation ${timeline.generation}` : ''}</Typography>
            <Button size="small" onClick={() => setTick((t) => t + 1)} disabled={loading} data-testid="timeline-refresh">
              {loading ? 'Loading…' : 'Refresh'}
            </Button>
          </Stack>
          <ErrorNote error={error} />
          {timeline?.unreachable.map((u) => (
            <Alert key={u.volref} severity="warning" data-testid="timeline-unreachable">
              The history kept by {u.volref} could not be read ({u.error}): its role changes are missing here.
            </Alert>
          ))}
          {!timeline && loading && <Typography variant="body2">Loading the timeline…</Typography>}
          {timeline && (
            <Table size="small" aria-label={`timeline of ${pair}`}>
              <TableHead>
                <TableRow>
                  <TableCell>When</TableCell>
                  <TableCell>Generation</TableCell>
                  <TableCell>What</TableCell>
                  <TableCell>Event</TableCell>
                  <TableCell>By</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {timeline.entries.map((e, i) => (
                  <TableRow key={`${e.atMs}-${i}`} data-testid="timeline-entry">
                    <TableCell sx={{ whiteSpace: 'nowrap' }}>{new Date(e.atMs).toLocaleString()}</TableCell>
                    <TableCell>{e.generation ?? '—'}</TableCell>
                    <TableCell>
                      <Chip size="small" label={kindLabels[e.kind]} color={kindColours[e.kind]} />
                    </TableCell>
                    <TableCell sx={{ wordBreak: 'break-all' }}>{e.title}</TableCell>
                    <TableCell>{e.by ?? '—'}</TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          )}
        </Stack>
      </CardContent>
    </Card>
  );
}

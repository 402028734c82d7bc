// Event log: every engine event with time, pair and severity; filter and export.
import { Button, MenuItem, Stack, Table, TableBody, TableCell, TableHead, TableRow, TextField, Typography } from '@mui/material';
import { useMemo, useState } from 'react';
import type { EngineEventDto, Severity } from '../../src-main/console-api';
import { EmptyState } from '../components/EmptyState';
import { formatTime } from '../format';

const severityColour: Record<Severity, string> = { info: 'text.primary', warning: 'warning.main', error: 'error.main' };

function exportEvents(events: readonly EngineEventDto[]): void {
  const blob = new Blob([JSON.stringify(events, null, 2)], { type: 'application/json' });
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = `tidemark-events-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
  link.click();
  URL.revokeObjectURL(link.href);
}

export function EventsScreen({ events }: { events: readonly EngineEventDto[] }) {
  const [text, setText] = useState('');
  const [severity, setSeverity] = useState<'all' | Severity>('all');
  const shown = useMemo(() => {
    const needle = text.toLowerCase();
    return events
      .filter((e) => (severity === 'all' || e.severity === severity) && (!needle || `${e.pair ?? ''} ${e.kind} ${e.message}`.toLowerCase().includes(needle)))
      .reverse();
  }, [events, text, severity]);
  return (
    <>
      <Typography variant="h5" gutterBottom>
        Events
      </Typography>
      <Stack direction="row" spacing={2} sx={{ mb: 2 }}>
        <TextField
          size="small"
          label="Filter"
          value={text}
          onChange={(e) => setText(e.target.value)}
          slotProps={{ htmlInput: { 'data-testid': 'events-filter' } }}
        />
        <TextField
          size="small"
          select
          label="Severity"
          value={severity}
          onChange={(e) => setSeverity(e.target.value as 'all' | Severity)}
          sx={{ minWidth: 140 }}
        >
          <MenuItem value="all">all</MenuItem>
          <MenuItem value="info">info</MenuItem>
          <MenuItem value="warning">warning</MenuItem>
          <MenuItem value="error">error</MenuItem>
        </TextField>
        <Button variant="outlined" onClick={() => exportEvents(shown)} disabled={shown.length === 0}>
          Export {shown.length} as JSON
        </Button>
      </Stack>
      {shown.length === 0 ? (
        <EmptyState title={events.length === 0 ? 'No events yet' : 'No event matches the filter'}>
          {events.length === 0 ? 'Start the write generator on the lab pair to see tracking at work.' : 'Clear the filter to see all events.'}
        </EmptyState>
      ) : (
        <Table size="small" aria-label="events">
          <TableHead>
            <TableRow>
              <TableCell>Time</TableCell>
              <TableCell>Severity</TableCell>
              <TableCell>Pair</TableCell>
              <TableCell>Event</TableCell>
            </TableRow>
          </TableHead>
          <TableBody>
            {shown.map((e) => (
              <TableRow key={e.id} data-testid="event-row">
                <TableCell sx={{ whiteSpace: 'nowrap' }}>{formatTime(e.atMs)}</TableCell>
                <TableCell sx={{ color: severityColour[e.severity] }}>{e.severity}</TableCell>
                <TableCell>{e.pair ?? '—'}</TableCell>
                <TableCell>
                  <Typography variant="body2">{e.message}</Typography>
                  <Typography variant="caption" color="text.secondary">
                    {e.kind}
                  </Typography>
                </TableCell>
              </TableRow>
            ))}
          </TableBody>
        </Table>
      )}
    </>
  );
}

// Volumes: every volume registered in the home, with size, regions, realization and role.
import { Chip, Table, TableBody, TableCell, TableContainer, TableHead, TableRow, Typography } from '@mui/material';
import type { OverviewDto } from '../../src-main/console-api';
import { EmptyState } from '../components/EmptyState';
import { formatBytes } from '../format';

export function VolumesScreen({ overview }: { overview: OverviewDto | undefined }) {
  if (!overview) return null;
  if (overview.volumes.length === 0) {
    return (
      <EmptyState title="No volumes yet">
        Create one with <code>tidemark volume create PATH --size 1G</code>, or reset the lab from the Pairs screen.
      </EmptyState>
    );
  }
  return (
    <TableContainer>
      <Typography variant="h5" gutterBottom>
        Volumes
      </Typography>
      <Table size="small" aria-label="volumes">
        <TableHead>
          <TableRow>
            <TableCell>Path</TableCell>
            <TableCell align="right">Size</TableCell>
            <TableCell align="right">Regions</TableCell>
            <TableCell align="right">Realized</TableCell>
            <TableCell>Pair</TableCell>
          </TableRow>
        </TableHead>
        <TableBody>
          {overview.volumes.map((v) => (
            <TableRow key={v.volumeId} data-testid="volume-row">
              <TableCell sx={{ fontFamily: 'monospace' }}>{v.path}</TableCell>
              <TableCell align="right">{formatBytes(v.sizeBytes)}</TableCell>
              <TableCell align="right">
                {v.regions} × {formatBytes(v.regionBytes)}
              </TableCell>
              <TableCell align="right">{v.realizedRegions}</TableCell>
              <TableCell>{v.pair ? <Chip size="small" label={`${v.pair}: ${v.role}`} color={v.role === 'primary' ? 'primary' : 'default'} /> : '—'}</TableCell>
            </TableRow>
          ))}
        </TableBody>
      </Table>
    </TableContainer>
  );
}

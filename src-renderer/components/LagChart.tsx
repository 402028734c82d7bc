// The replication lag chart: an SVG with two series over time — lag bytes (left axis) and
// shipping rate (right axis), each scaled to its own rounded maximum. Small on purpose: a
// polyline per series, no chart library (the history is at most 600 samples).
import { Box, Stack, Typography, useTheme } from '@mui/material';
import type { LagSampleDto } from '../../src-main/console-api';
import { formatBytes, formatDurationMs } from '../format';

const widthPx = 720;
const heightPx = 200;
const plot = { left: 72, right: widthPx - 84, top: 12, bottom: heightPx - 28 };
/** The time axis spans at least this much, so two samples do not fill the width. */
const spanMsMin = 60_000;

/** The smallest 1, 2 or 5 × 10^k of the largest power-of-1024 unit that is at least `value` (1 for 0). */
export function niceCeilBytes(value: number): number {
  if (!(value > 0)) return 1;
  let unit = 1;
  while (value / unit >= 1024) unit *= 1024;
  const scaled = value / unit;
  const decade = 10 ** Math.floor(Math.log10(scaled));
  const step = [1, 2, 5, 10].find((s) => s * decade >= scaled) ?? 10;
  return step * decade * unit;
}

export interface ChartGeometry {
  readonly lagMaxBytes: number;
  readonly rateMaxBytesPerSecond: number;
  readonly spanMs: number;
  /** SVG `points` of each series, oldest first. */
  readonly lagPoints: string;
  readonly ratePoints: string;
}

/** Where each sample goes: x by age against the newest sample, y by value against the axis maximum. */
export function lagChartGeometry(samples: readonly LagSampleDto[]): ChartGeometry {
  const newestMs = samples[samples.length - 1]?.atMs ?? 0;
  const oldestMs = samples[0]?.atMs ?? 0;
  const spanMs = Math.max(spanMsMin, newestMs - oldestMs);
  const lagMaxBytes = niceCeilBytes(Math.max(0, ...samples.map((s) => s.lagBytes)));
  const rateMaxBytesPerSecond = niceCeilBytes(Math.max(0, ...samples.map((s) => s.bytesPerSecond)));
  const x = (atMs: number) => plot.right - ((newestMs - atMs) / spanMs) * (plot.right - plot.left);
  const y = (value: number, max: number) => plot.bottom - (Math.min(value, max) / max) * (plot.bottom - plot.top);
  const points = (value: (s: LagSampleDto) => number, max: number) => samples.map((s) => `${x(s.atMs).toFixed(1)},${y(value(s), max).toFixed(1)}`).join(' ');
  return {
    lagMaxBytes,
    rateMaxBytesPerSecond,
    spanMs,
    lagPoints: points((s) => s.lagBytes, lagMaxBytes),
    ratePoints: points((s) => s.bytesPerSecond, rateMaxBytesPerSecond),
  };
}

export function LagChart({ samples }: { samples: readonly LagSampleDto[] }) {
  const theme = useTheme();
  const lagColor = theme.palette.warning.main;
  const rateColor = theme.palette.primary.main;
  const axisColor = theme.palette.text.secondary;
  if (samples.length < 2) {
    return (
      <Typography variant="body2" color="text.secondary" data-testid="lag-chart-empty">
        The lag chart fills in while replication runs (one sample a second, the last ten minutes).
      </Typography>
    );
  }
  const g = lagChartGeometry(samples);
  const label = { fontSize: 11, fill: axisColor, fontFamily: theme.typography.fontFamily };
  return (
    <Box data-testid="lag-chart">
      <Stack direction="row" spacing={2} sx={{ mb: 0.5 }}>
        <Typography variant="caption" sx={{ color: lagColor }}>
          ━ lag (left axis)
        </Typography>
        <Typography variant="caption" sx={{ color: rateColor }}>
          ━ rate (right axis)
        </Typography>
      </Stack>
      <svg
        viewBox={`0 0 ${widthPx} ${heightPx}`}
        width="100%"
        style={{ maxWidth: widthPx, display: 'block' }}
        role="img"
        aria-label={`lag up to ${formatBytes(g.lagMaxBytes)} and rate up to ${formatBytes(g.rateMaxBytesPerSecond)}/s over the last ${formatDurationMs(g.spanMs)}`}
      >
        <line x1={plot.left} y1={plot.bottom} x2={plot.right} y2={plot.bottom} stroke={axisColor} strokeWidth={1} />
        <line x1={plot.left} y1={plot.top} x2={plot.left} y2={plot.bottom} stroke={axisColor} strokeWidth={1} />
        <line x1={plot.right} y1={plot.top} x2={plot.right} y2={plot.bottom} stroke={axisColor} strokeWidth={1} />
        <line x1={plot.left} y1={plot.top} x2={plot.right} y2={plot.top} stroke={axisColor} strokeWidth={0.5} strokeDasharray="3 3" />
        <text x={plot.left - 6} y={plot.top + 4} textAnchor="end" {...label} fill={lagColor} data-testid="lag-chart-lag-max">
          {formatBytes(g.lagMaxBytes)}
        </text>
        <text x={plot.left - 6} y={plot.bottom} textAnchor="end" {...label}>
          0
        </text>
        <text x={plot.right + 6} y={plot.top + 4} textAnchor="start" {...label} fill={rateColor} data-testid="lag-chart-rate-max">
          {formatBytes(g.rateMaxBytesPerSecond)}/s
        </text>
        <text x={plot.right + 6} y={plot.bottom} textAnchor="start" {...label}>
          0/s
        </text>
        <text x={plot.left} y={heightPx - 8} textAnchor="start" {...label}>
          −{formatDurationMs(g.spanMs)}
        </text>
        <text x={plot.right} y={heightPx - 8} textAnchor="end" {...label}>
          now
        </text>
        <polyline points={g.lagPoints} fill="none" stroke={lagColor} strokeWidth={2} strokeLinejoin="round" data-testid="lag-chart-lag" />
        <polyline points={g.ratePoints} fill="none" stroke={rateColor} strokeWidth={1.5} strokeLinejoin="round" data-testid="lag-chart-rate" />
      </svg>
    </Box>
  );
}

// Bitmap heatmap: a canvas of 1M+ regions, downsampled by density when regions outnumber
// pixels; zoom (wheel or buttons) and pan (drag); hover names the region, its bytes and state.

import { Box, Button, ButtonGroup, Stack, Typography, useTheme } from '@mui/material';
import { useCallback, useEffect, useMemo, useRef, useState, type MouseEvent, type WheelEvent } from 'react';
import { cellAt, cellRegions, countRange, heatmapLayout, type BitsView } from '../heatmap/density';
import { DensityClient } from '../heatmap/density-client';
import { darkPalette, lightPalette, paintDensities } from '../heatmap/paint';
import { formatBytes } from '../format';

export interface HeatmapProps {
  readonly bits: (BitsView & { readonly regionBytes: number }) | undefined;
  /** What a set bit means, e.g. "out of sync". */
  readonly setLabel: string;
  /** What a clear bit means; "in sync" unless said (an inspected map's clear regions are just "not set"). */
  readonly clearLabel?: string;
  readonly heightPx?: number;
  /** Zoom to these regions whenever `key` changes (a run picked in a list, say). */
  readonly focus?: { readonly start: number; readonly regions: number; readonly key: number };
}

interface View {
  readonly start: number;
  readonly regions: number;
}

function clampView(view: View, regionCount: number): View {
  const regions = Math.max(1, Math.min(regionCount, Math.round(view.regions)));
  const start = Math.max(0, Math.min(regionCount - regions, Math.round(view.start)));
  return { start, regions };
}

export function Heatmap({ bits, setLabel, clearLabel = 'in sync', heightPx = 320, focus }: HeatmapProps) {
  const theme = useTheme();
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const boxRef = useRef<HTMLDivElement>(null);
  const [widthPx, setWidthPx] = useState(800);
  const regionCount = bits?.regionCount ?? 0;
  const [view, setView] = useState<View>({ start: 0, regions: regionCount });
  const [hover, setHover] = useState<string | null>(null);
  const drag = useRef<{ x: number; y: number; start: number } | null>(null);

  useEffect(() => setView((v) => (v.regions === 0 || v.regions > regionCount ? { start: 0, regions: regionCount } : clampView(v, regionCount))), [regionCount]);

  const focusKey = focus?.key;
  useEffect(() => {
    if (focus && regionCount > 0) setView(clampView(focus, regionCount));
    // Only a new focus request moves the view; the user's own zooming is kept otherwise.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [focusKey, regionCount]);

  useEffect(() => {
    const box = boxRef.current;
    if (!box) return;
    const observer = new ResizeObserver(() => setWidthPx(Math.max(100, Math.floor(box.clientWidth))));
    observer.observe(box);
    return () => observer.disconnect();
  }, []);

  const layout = useMemo(() => heatmapLayout(Math.max(1, view.regions), widthPx, heightPx), [view.regions, widthPx, heightPx]);

  // The worker lives in a ref, created on first use and disposed on unmount (not in render,
  // so React's double-invoked renders and effects never leak or lose it).
  const densitiesRef = useRef<DensityClient | undefined>(undefined);
  useEffect(
    () => () => {
      densitiesRef.current?.dispose();
      densitiesRef.current = undefined;
    },
    [],
  );

  useEffect(() => {
    const canvas = canvasRef.current;
    const context = canvas?.getContext('2d');
    if (!canvas || !context || !bits || view.regions === 0) return;
    let cancelled = false;
    let frame = 0;
    // Densities are computed off the UI thread; only the paint runs here, in a frame.
    densitiesRef.current ??= new DensityClient();
    void densitiesRef.current.compute({ bits, layout, viewStart: view.start, viewRegions: view.regions }).then((result) => {
      if (!result || cancelled) return;
      frame = requestAnimationFrame(() =>
        paintDensities(context, layout, result.density, result.cells, theme.palette.mode === 'dark' ? darkPalette : lightPalette),
      );
    });
    return () => {
      cancelled = true;
      cancelAnimationFrame(frame);
    };
  }, [bits, layout, view, theme.palette.mode, widthPx]);

  const describe = useCallback(
    (xPx: number, yPx: number): string | null => {
      if (!bits) return null;
      const cell = cellAt(layout, xPx, yPx);
      if (cell < 0) return null;
      const { first, end } = cellRegions(layout, view.start, view.regions, cell);
      if (first >= bits.regionCount) return null;
      const last = Math.min(end, bits.regionCount) - 1;
      const set = countRange(bits.words, first, last + 1);
      const bytes = `bytes ${formatBytes(first * bits.regionBytes)} – ${formatBytes((last + 1) * bits.regionBytes)} (offset ${first * bits.regionBytes})`;
      if (first === last) return `region ${first}: ${bytes}: ${set ? setLabel : clearLabel}`;
      return `regions ${first}–${last}: ${bytes}: ${set} of ${last - first + 1} ${setLabel} (${Math.round((100 * set) / (last - first + 1))} %)`;
    },
    [bits, layout, view, setLabel, clearLabel],
  );

  const zoom = (factor: number, anchorRegion = view.start + view.regions / 2) => {
    const regions = view.regions / factor;
    const start = anchorRegion - (anchorRegion - view.start) / factor;
    setView(clampView({ start, regions }, regionCount));
  };

  const position = (event: MouseEvent<HTMLCanvasElement>) => {
    const rect = event.currentTarget.getBoundingClientRect();
    return { x: event.clientX - rect.left, y: event.clientY - rect.top };
  };

  const onWheel = (event: WheelEvent<HTMLCanvasElement>) => {
    const { x, y } = position(event);
    const cell = cellAt(layout, x, y);
    const anchor = cell < 0 ? undefined : cellRegions(layout, view.start, view.regions, cell).first;
    zoom(event.deltaY < 0 ? 2 : 0.5, anchor);
  };

  const onMouseMove = (event: MouseEvent<HTMLCanvasElement>) => {
    const { x, y } = position(event);
    if (drag.current) {
      const rowsMoved = Math.round((drag.current.y - y) / layout.cellPx);
      const colsMoved = Math.round((drag.current.x - x) / layout.cellPx);
      const cellsMoved = rowsMoved * layout.cols + colsMoved;
      setView(clampView({ start: drag.current.start + cellsMoved * layout.regionsPerCell, regions: view.regions }, regionCount));
      return;
    }
    setHover(describe(x, y));
  };

  return (
    <Box ref={boxRef} sx={{ width: '100%' }}>
      <canvas
        ref={canvasRef}
        data-testid="heatmap-canvas"
        width={widthPx}
        height={heightPx}
        style={{ width: widthPx, height: heightPx, display: 'block', cursor: drag.current ? 'grabbing' : 'crosshair', borderRadius: 4 }}
        aria-label={`heatmap of ${regionCount} regions; ${setLabel} regions are coloured`}
        onWheel={onWheel}
        onMouseDown={(event) => {
          const { x, y } = position(event);
          drag.current = { x, y, start: view.start };
        }}
        onMouseUp={() => (drag.current = null)}
        onMouseLeave={() => {
          drag.current = null;
          setHover(null);
        }}
        onMouseMove={onMouseMove}
      />
      <Stack direction="row" spacing={2} sx={{ mt: 1, alignItems: 'center', flexWrap: 'wrap' }}>
        <ButtonGroup size="small" aria-label="zoom">
          <Button onClick={() => zoom(2)} aria-label="zoom in">
            +
          </Button>
          <Button onClick={() => zoom(0.5)} aria-label="zoom out">
            −
          </Button>
          <Button onClick={() => setView({ start: 0, regions: regionCount })}>all</Button>
        </ButtonGroup>
        <Legend setLabel={setLabel} clearLabel={clearLabel} />
        <Typography variant="body2" color="text.secondary" data-testid="heatmap-view">
          showing regions {view.start}–{view.start + view.regions - 1} of {regionCount}
          {layout.regionsPerCell > 1 ? ` (${layout.regionsPerCell.toFixed(1)} per pixel)` : ''}
        </Typography>
      </Stack>
      <Typography variant="body2" data-testid="heatmap-hover" sx={{ minHeight: '1.5em', fontFamily: 'monospace' }}>
        {hover ?? 'hover the map for a region; wheel to zoom, drag to pan'}
      </Typography>
    </Box>
  );
}

function Legend({ setLabel, clearLabel }: { setLabel: string; clearLabel: string }) {
  const theme = useTheme();
  const palette = theme.palette.mode === 'dark' ? darkPalette : lightPalette;
  const rgb = (c: readonly number[]) => `rgb(${c.join(',')})`;
  return (
    <Stack direction="row" spacing={1} sx={{ alignItems: 'center' }} aria-label="legend">
      <Box sx={{ width: 14, height: 14, bgcolor: rgb(palette.empty), border: 1, borderColor: 'divider' }} />
      <Typography variant="caption">{clearLabel}</Typography>
      <Box sx={{ width: 60, height: 14, background: `linear-gradient(90deg, ${rgb(palette.empty)}, ${rgb(palette.full)})` }} />
      <Box sx={{ width: 14, height: 14, bgcolor: rgb(palette.full) }} />
      <Typography variant="caption">all {setLabel}</Typography>
    </Stack>
  );
}

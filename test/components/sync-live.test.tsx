// @vitest-environment happy-dom
// A pair's detail while its sync runs: the Sync card's progress (regions, bytes, rate, ETA,
// regions written meanwhile) follows the overview, and the heatmap of what the sync conveyed —
// and of the regions marked on the primary meanwhile — is asked again and again and updates.
import { act, cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import type { BitmapDto, MapKind, OverviewDto, PairDto, SyncProgressDto, SyncStateDto } from '../../src-main/console-api';
import { PairsScreen } from '../../src-renderer/screens/PairsScreen';
import { RecordingApi } from './fake-api';

afterEach(() => {
  cleanup();
  delete window.tidemark;
});

const MiB = 2 ** 20;

/** A 32-region map with `regions` set, as the engine sends it. */
function bitmap(which: MapKind, regions: readonly number[]): BitmapDto {
  let word = 0;
  for (const r of regions) word |= 1 << r;
  const bytes = new Uint8Array(new Uint32Array([word >>> 0]).buffer);
  return { pair: 'field', which, regionCount: 32, regionBytes: MiB, setCount: regions.length, wordsBase64: btoa(String.fromCharCode(...bytes)) };
}

function progress(regionsDone: number, marked: number): SyncProgressDto {
  return {
    method: 'tardy',
    round: 0,
    phase: 'pass',
    regionsDone,
    regionsTotal: 32,
    regionsTransferred: regionsDone,
    bytesTransferred: regionsDone * MiB,
    bytesPerSecond: 4 * MiB,
    etaMs: ((32 - regionsDone) / 4) * 1000,
    marked,
  };
}

function overview(sync: SyncStateDto): OverviewDto {
  const pair: PairDto = {
    name: 'field',
    mode: 'continuous',
    primary: '/d/a.img',
    secondary: '/d/b.img',
    regionBytes: MiB,
    regions: 32,
    tracking: false,
    oosRegions: 0,
    moosRegions: 0,
    lagBytes: 0,
    writesTracked: 0,
    lastSync: null,
    sync,
  };
  return { homeDir: '/h', volumes: [], pairs: [pair], generator: null, groups: [], groupsError: null };
}

describe('a running sync in the pair detail', () => {
  it('progress and the conveyed heatmap update while it runs; the marked regions show on OOS; then the summary', async () => {
    let conveyed: number[] = [0, 1, 2, 3];
    const oos = [5, 20];
    const api = new RecordingApi({
      bitmap: ({ which }) => bitmap(which, which === 'conveyed' ? conveyed : which === 'oos' ? oos : []),
    });
    window.tidemark = api;
    const running: SyncStateDto = { pair: 'field', method: 'tardy', running: true, startedAtMs: 1, progress: progress(4, 0), summary: null, error: null };
    const view = render(<PairsScreen overview={overview(running)} onChanged={() => undefined} />);
    fireEvent.click(screen.getByTestId('pair-card-field'));

    // A pair this console does not track opens on what its sync conveyed.
    await waitFor(() => expect(screen.getByTestId('map-count').textContent).toBe('Conveyed: 4 of 32 regions conveyed by this console’s sync'));
    expect(screen.getByTestId('sync-progress').textContent).toBe('tardy, round 1, pass: 4 of 32 regions · sent 4 MiB at 4 MiB/s · ETA 7s');
    expect(screen.getByTestId('sync-cancel')).toBeTruthy();
    const canvas = screen.getByTestId('heatmap-canvas');
    canvas.getBoundingClientRect = () => ({ left: 0, top: 0, right: 800, bottom: 320, width: 800, height: 320, x: 0, y: 0, toJSON: () => '' });
    // 32 regions in 800×320 px: 32 px cells, 25 per row; the 13th cell is region 12.
    const hover = () => {
      fireEvent.mouseMove(canvas, { clientX: 12 * 32 + 3, clientY: 3 });
      return screen.getByTestId('heatmap-hover').textContent;
    };
    expect(hover()).toMatch(/^region 12: .*: in sync$/);

    // The sync moves on: the overview brings its progress, the next bitmap poll more conveyed regions.
    conveyed = Array.from({ length: 16 }, (_, r) => r);
    view.rerender(<PairsScreen overview={overview({ ...running, progress: progress(16, 2) })} onChanged={() => undefined} />);
    expect(screen.getByTestId('sync-progress').textContent).toBe(
      'tardy, round 1, pass: 16 of 32 regions · sent 16 MiB at 4 MiB/s · ETA 4s · 2 regions written meanwhile',
    );
    await waitFor(() => expect(screen.getByTestId('map-count').textContent).toBe('Conveyed: 16 of 32 regions conveyed by this console’s sync'));
    await waitFor(() => expect(hover()).toBe('region 12: bytes 12 MiB – 13 MiB (offset 12582912): conveyed by this console’s sync'));
    expect(api.requests.filter((r) => r.verb === 'bitmap' && (r.args as { which: string }).which === 'conveyed').length).toBeGreaterThanOrEqual(2);

    // The regions written meanwhile (marked) are the OOS map's.
    fireEvent.click(screen.getByTestId('map-oos'));
    await waitFor(() => expect(screen.getByTestId('map-count').textContent).toBe('OOS: 2 of 32 regions out of sync'));
    fireEvent.click(screen.getByTestId('map-conveyed'));

    conveyed = Array.from({ length: 32 }, (_, r) => r);
    const done: SyncStateDto = {
      ...running,
      running: false,
      progress: progress(32, 2),
      summary: {
        method: 'tardy',
        regions: 32,
        regionsTransferred: 32,
        bytesTransferred: 32 * MiB,
        regionsReclaimed: 0,
        pendingRegions: 0,
        pointInTime: '2026-11-24T10:00:00.000Z',
        durationMs: 8000,
        rounds: 2,
        resumed: false,
      },
    };
    await act(async () => view.rerender(<PairsScreen overview={overview(done)} onChanged={() => undefined} />));
    expect(screen.queryByTestId('sync-progress')).toBeNull();
    expect(screen.getByTestId('sync-summary').textContent).toMatch(/^Synced \(tardy\): 32 of 32 regions sent \(32 MiB\) in 8s/);
    await waitFor(() => expect(screen.getByTestId('map-count').textContent).toBe('Conveyed: 32 of 32 regions conveyed by this console’s sync'));
  });

  it("a periodic pair's detail offers its change maps, live: current first, then next; a continuous pair's does not", async () => {
    let next = [1, 2];
    const api = new RecordingApi({ bitmap: ({ which }) => bitmap(which, which === 'current' ? [7] : which === 'next' ? next : []) });
    window.tidemark = api;
    const idle: SyncStateDto = { pair: 'field', method: 'tardy', running: false, startedAtMs: 1, progress: null, summary: null, error: null };
    const periodic = overview(idle);
    const view = render(<PairsScreen overview={{ ...periodic, pairs: [{ ...periodic.pairs[0]!, mode: 'periodic' }] }} onChanged={() => undefined} />);
    fireEvent.click(screen.getByTestId('pair-card-field'));
    await waitFor(() =>
      expect(screen.getByTestId('map-count').textContent).toBe('Current: 1 of 32 regions to ship in the running cycle (and written since its snapshot)'),
    );
    fireEvent.click(screen.getByTestId('map-next'));
    await waitFor(() => expect(screen.getByTestId('map-count').textContent).toBe('Next: 2 of 32 regions written since the last cycle began'));
    next = [1, 2, 3, 4];
    await waitFor(() => expect(screen.getByTestId('map-count').textContent).toBe('Next: 4 of 32 regions written since the last cycle began'));
    view.unmount();

    render(<PairsScreen overview={overview(idle)} onChanged={() => undefined} />);
    fireEvent.click(screen.getByTestId('pair-card-field'));
    await waitFor(() => expect(screen.getByTestId('map-conveyed')).toBeTruthy());
    expect(screen.queryByTestId('map-current')).toBeNull();
    expect(screen.queryByTestId('map-next')).toBeNull();
  });
});

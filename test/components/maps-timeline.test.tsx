// @vitest-environment happy-dom
// The map inspector and the pair timeline in a DOM: what they ask the engine (mapView with a
// source and a comparison, mapFileOpen with the file's bytes, pairTimeline), what they show
// (counts, runs with offsets, every set operation's count, role changes with who and when),
// their loading, empty and error states, and the upload limit.
import { act, cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import type { MapFileDto, MapRunDto, MapViewDto, OverviewDto, PairTimelineDto } from '../../src-main/console-api';
import { ApiError } from '../../src-renderer/api';
import { MapsScreen, mapFileUploadBytesMax, toBase64 } from '../../src-renderer/screens/MapsScreen';
import { TimelinePanel } from '../../src-renderer/screens/TimelinePanel';
import { RecordingApi } from './fake-api';

const MiB = 2 ** 20;

afterEach(cleanup);

const overview: OverviewDto = {
  homeDir: '/h',
  volumes: [],
  pairs: [
    {
      name: 'field',
      mode: 'continuous',
      primary: '/d/a.img',
      secondary: '/d/b.img',
      regionBytes: MiB,
      regions: 64,
      tracking: true,
      oosRegions: 3,
      moosRegions: 5,
      lagBytes: 3 * MiB,
      writesTracked: 3,
      lastSync: null,
      sync: null,
    },
  ],
  generator: null,
  groups: [],
  groupsError: null,
};

/** A 64-region map with the given regions set, as the engine encodes it. */
function wordsOf(regions: readonly number[]): string {
  const words = new Uint32Array(2);
  for (const r of regions) words[r >>> 5]! |= 1 << (r & 31);
  return Buffer.from(words.buffer).toString('base64');
}

function view(label: string, regions: readonly number[], extra: Partial<MapViewDto> = {}): MapViewDto {
  const runs: MapRunDto[] = [];
  for (const r of [...regions].sort((a, b) => a - b)) {
    const last = runs[runs.length - 1];
    if (last && last.firstRegion + last.regionCount === r)
      runs[runs.length - 1] = { ...last, regionCount: last.regionCount + 1, lengthBytes: last.lengthBytes + MiB };
    else runs.push({ firstRegion: r, regionCount: 1, offsetBytes: r * MiB, lengthBytes: MiB });
  }
  return {
    label,
    regionCount: 64,
    regionBytes: MiB,
    volumeBytes: 64 * MiB,
    setCount: regions.length,
    bytes: regions.length * MiB,
    runCount: runs.length,
    largestRun: runs.length ? [runs[0]!.firstRegion, runs[0]!.regionCount] : null,
    runs,
    wordsBase64: wordsOf(regions),
    comparison: null,
    ...extra,
  };
}

describe('MapsScreen', () => {
  it('asks for the pair’s OOS first, shows its count and runs with offsets, and switches maps', async () => {
    const api = new RecordingApi({
      mapView: ({ source }) => ('pair' in source && source.which === 'resync' ? view('resync of field', [1, 2, 3, 40]) : view('oos of field', [5, 6, 9])),
    });
    window.tidemark = api;
    render(<MapsScreen overview={overview} initialPair="field" />);
    await waitFor(() =>
      expect(screen.getByTestId('inspector-count').textContent).toMatch(/^oos of field: 3 of 64 regions set \(3 MiB\) in 2 runs, largest 2 regions from 5/),
    );
    expect(api.requests[0]).toEqual({ verb: 'mapView', args: { source: { pair: 'field', which: 'oos' } } });
    expect(screen.getAllByTestId('inspector-run').map((r) => r.textContent)).toEqual(['5–6252428802 MiBzoom', '9194371841 MiBzoom']);
    await act(async () => {
      fireEvent.click(screen.getByTestId('inspector-a-which-resync'));
    });
    await waitFor(() => expect(screen.getByTestId('inspector-count').textContent).toMatch(/^resync of field: 4 of 64 regions set/));
    expect(api.requests[1]).toEqual({ verb: 'mapView', args: { source: { pair: 'field', which: 'resync' } } });
  });

  it('a run’s zoom button moves the heatmap to that run', async () => {
    window.tidemark = new RecordingApi({ mapView: () => view('oos of field', [30, 31, 32]) });
    render(<MapsScreen overview={overview} initialPair="field" />);
    await waitFor(() => expect(screen.getAllByTestId('inspector-run')).toHaveLength(1));
    expect(screen.getByTestId('heatmap-view').textContent).toContain('showing regions 0–63 of 64');
    // Hover names a region's bytes and whether it is set (not "in sync": any map is inspected here).
    const canvas = screen.getByTestId('heatmap-canvas');
    canvas.getBoundingClientRect = () => ({ left: 0, top: 0, right: 800, bottom: 240, width: 800, height: 240, x: 0, y: 0, toJSON: () => '' });
    fireEvent.mouseMove(canvas, { clientX: 1, clientY: 1 });
    expect(screen.getByTestId('heatmap-hover').textContent).toBe('region 0: bytes 0 B – 1 MiB (offset 0): not set');
    fireEvent.click(screen.getByRole('button', { name: 'zoom to regions 30 to 32' }));
    // Three regions padded by four either side: 26–36.
    await waitFor(() => expect(screen.getByTestId('heatmap-view').textContent).toContain('showing regions 26–36 of 64'));
  });

  it('compares two maps: asks with the second source and the operation, shows every operation’s count', async () => {
    const compared = view('oos of field', [5], {
      comparison: {
        a: { label: 'oos of field', setCount: 3 },
        b: { label: 'moos of field', setCount: 5 },
        operation: 'intersection',
        counts: { union: 5, intersection: 3, 'a-minus-b': 0, 'b-minus-a': 2 },
      },
    });
    const api = new RecordingApi({ mapView: ({ compare }) => (compare ? compared : view('oos of field', [5, 6, 9])) });
    window.tidemark = api;
    render(<MapsScreen overview={overview} initialPair="field" />);
    await waitFor(() => screen.getByTestId('inspector-count'));
    fireEvent.click(screen.getByRole('switch', { name: 'compare with a second map' }));
    expect(screen.getByText('Pick map B to compare.')).toBeTruthy();
    // Choose B: the pair, then its MOOS.
    fireEvent.mouseDown(screen.getByRole('combobox', { name: /^B: from/ }));
    await act(async () => {
      fireEvent.click(await screen.findByRole('option', { name: 'pair field' }));
    });
    await act(async () => {
      fireEvent.click(screen.getByTestId('inspector-b-which-moos'));
    });
    await waitFor(() => expect(screen.getByTestId('inspector-compare-b-minus-a').textContent).toBe('2'));
    expect(api.requests.at(-1)).toEqual({
      verb: 'mapView',
      args: { source: { pair: 'field', which: 'oos' }, compare: { source: { pair: 'field', which: 'moos' }, operation: 'intersection' } },
    });
    expect(screen.getByTestId('inspector-compare-a').textContent).toBe('3');
    expect(screen.getByTestId('inspector-compare-union').textContent).toBe('5');
    expect(screen.getByTestId('inspector-count').textContent).toMatch(/^A ∩ B: 1 of 64/);
    await act(async () => {
      fireEvent.click(screen.getByTestId('inspector-op-b-minus-a'));
    });
    expect(api.requests.at(-1)?.args).toMatchObject({ compare: { operation: 'b-minus-a' } });
  });

  it('opens a map file: sends its name and bytes, then inspects its first map', async () => {
    const opened: MapFileDto = {
      fileId: 7,
      fileName: 'field.tmmap',
      pair: { name: 'field', pairId: '00000000-0000-4000-8000-000000000000' },
      regionCount: 64,
      regionBytes: MiB,
      volumeBytes: 64 * MiB,
      createdAt: '2026-11-24T09:00:00.000Z',
      maps: [
        { name: 'resync', setCount: 2 },
        { name: 'oos', setCount: 1 },
      ],
    };
    const api = new RecordingApi({
      mapView: ({ source }) => view('fileId' in source ? `${source.map} of field.tmmap` : 'oos of field', [1, 2]),
      mapFileOpen: () => opened,
    });
    window.tidemark = api;
    render(<MapsScreen overview={overview} initialPair="field" />);
    const bytes = new Uint8Array([84, 77, 82, 69, 71, 77, 65, 80, 0, 255]);
    await act(async () => {
      fireEvent.change(screen.getByTestId('inspector-file-input'), { target: { files: [new File([bytes], 'field.tmmap')] } });
    });
    await waitFor(() => expect(screen.getByTestId('inspector-count').textContent).toMatch(/^resync of field.tmmap: 2 of 64/));
    expect(api.requests.find((r) => r.verb === 'mapFileOpen')?.args).toEqual({ fileName: 'field.tmmap', bytesBase64: Buffer.from(bytes).toString('base64') });
    expect(api.requests.at(-1)).toEqual({ verb: 'mapView', args: { source: { fileId: 7, map: 'resync' } } });
    expect(screen.getByTestId('inspector-a-map-oos').textContent).toBe('oos (1)');
  });

  it('refuses a file too large to upload, naming the CLI way, without asking the engine', async () => {
    const api = new RecordingApi({ mapView: () => view('oos of field', []) });
    window.tidemark = api;
    render(<MapsScreen overview={overview} initialPair="field" />);
    const big = new File([new Uint8Array(mapFileUploadBytesMax + 1)], 'huge.tmmap');
    await act(async () => {
      fireEvent.change(screen.getByTestId('inspector-file-input'), { target: { files: [big] } });
    });
    await waitFor(() =>
      expect(screen.getByTestId('error-note').textContent).toMatch(/map file huge.tmmap is too large to open here .*tidemark map --open huge.tmmap/),
    );
    expect(api.requests.map((r) => r.verb)).not.toContain('mapFileOpen');
  });

  it('shows the engine’s reason for a map the pair lacks, and an empty map as such', async () => {
    const api = new RecordingApi({ mapView: () => view('oos of field', []) });
    window.tidemark = api;
    render(<MapsScreen overview={overview} initialPair="field" />);
    await waitFor(() => expect(screen.getByText('No region is set: nothing to list.')).toBeTruthy());
    api.request = async () => {
      throw new ApiError({ code: 'NOT_FOUND', message: 'pair field has no current map on /d/a.img', hint: 'a continuous pair has oos, moos and in-flight' });
    };
    await act(async () => {
      fireEvent.click(screen.getByTestId('inspector-a-which-current'));
    });
    await waitFor(() =>
      expect(screen.getByTestId('error-note').textContent).toBe('pair field has no current map on /d/a.imga continuous pair has oos, moos and in-flight'),
    );
    expect(screen.queryByTestId('inspector-count')).toBeNull();
  });

  it('with no pair and no file: says how to get a map', () => {
    window.tidemark = new RecordingApi({});
    render(<MapsScreen overview={{ ...overview, pairs: [] }} />);
    expect(screen.getByTestId('empty-state').textContent).toMatch(/tidemark map NAME --which MAP --export FILE/);
  });

  it('toBase64 encodes large arrays in chunks as btoa would whole', () => {
    const bytes = new Uint8Array(100_000).map((_, i) => (i * 7919) & 255);
    expect(toBase64(bytes)).toBe(Buffer.from(bytes).toString('base64'));
  });
});

describe('TimelinePanel', () => {
  const timeline: PairTimelineDto = {
    pair: 'field',
    generation: 2,
    entries: [
      { atMs: Date.UTC(2026, 10, 24, 9, 0), kind: 'created', generation: 1, title: 'pair created: /d/a.img → /d/b.img', volref: null, by: null },
      { atMs: Date.UTC(2026, 10, 24, 9, 5), kind: 'role', generation: 2, title: 'forced failover: /d/b.img became primary', volref: '/d/b.img', by: 'ops@dr' },
    ],
    unreachable: [{ volref: 'site:/d/a.img', error: 'connection refused' }],
  };

  it('lists entries oldest first with generation, kind and who; names a member it could not read; reloads on a new version', async () => {
    const api = new RecordingApi({ pairTimeline: () => timeline });
    window.tidemark = api;
    const { rerender } = render(<TimelinePanel pair="field" version={0} />);
    await waitFor(() => expect(screen.getAllByTestId('timeline-entry')).toHaveLength(2));
    const rows = screen.getAllByTestId('timeline-entry').map((r) => r.textContent);
    expect(rows[0]).toMatch(/1created.*pair created: \/d\/a\.img → \/d\/b\.img—$/);
    expect(rows[1]).toMatch(/2role changeforced failover: \/d\/b\.img became primaryops@dr$/);
    expect(screen.getByText(/Timeline — generation 2/)).toBeTruthy();
    expect(screen.getByTestId('timeline-unreachable').textContent).toMatch(/site:\/d\/a\.img could not be read \(connection refused\)/);
    expect(api.requests).toEqual([{ verb: 'pairTimeline', args: { pair: 'field' } }]);
    rerender(<TimelinePanel pair="field" version={1} />);
    await waitFor(() => expect(api.requests).toHaveLength(2));
  });

  it('shows loading, then the engine’s error in context', async () => {
    let fail: (e: Error) => void = () => undefined;
    const api = new RecordingApi({});
    api.request = () => new Promise((_, reject) => (fail = reject));
    window.tidemark = api;
    render(<TimelinePanel pair="field" version={0} />);
    expect(screen.getByText('Loading the timeline…')).toBeTruthy();
    await act(async () => fail(new ApiError({ code: 'NOT_FOUND', message: 'no pair named "field"', hint: 'see `tidemark pair list`' })));
    await waitFor(() => expect(screen.getByTestId('error-note').textContent).toBe('no pair named "field"see `tidemark pair list`'));
  });
});

// @vitest-environment happy-dom
// Renderer components in a DOM: what they show, and what they ask the engine to do.
import { act, cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EngineEventDto, GeneratorStateDto, OverviewDto } from '../../src-main/console-api';
import { ApiError } from '../../src-renderer/api';
import { ErrorNote } from '../../src-renderer/components/ErrorNote';
import { Heatmap } from '../../src-renderer/components/Heatmap';
import { EventsScreen } from '../../src-renderer/screens/EventsScreen';
import { GeneratorPanel } from '../../src-renderer/screens/GeneratorPanel';
import { VolumesScreen } from '../../src-renderer/screens/VolumesScreen';
import { RecordingApi } from './fake-api';

afterEach(cleanup);

const events: EngineEventDto[] = [
  { id: 1, atMs: Date.UTC(2026, 10, 23, 10, 0, 0), severity: 'info', pair: null, kind: 'engine.started', message: 'engine started on home /h' },
  { id: 2, atMs: Date.UTC(2026, 10, 23, 10, 0, 1), severity: 'warning', pair: 'lab', kind: 'tracking.recovered', message: 'MOOS recovered: 3 region(s)' },
  { id: 3, atMs: Date.UTC(2026, 10, 23, 10, 0, 2), severity: 'error', pair: 'lab', kind: 'generator.failed', message: 'write generator stopped: disk full' },
];

describe('ErrorNote', () => {
  it('shows what failed and the engine hint', () => {
    render(<ErrorNote error={new ApiError({ code: 'NO_SPACE', message: 'cannot write volume /v: the disk is full', hint: 'free space and retry' })} />);
    expect(screen.getByTestId('error-note').textContent).toContain('cannot write volume /v: the disk is full');
    expect(screen.getByTestId('error-note').textContent).toContain('free space and retry');
  });

  it('shows a plain Error too (how Electron delivers bridge errors), and unpacks the bridge detail', () => {
    render(<ErrorNote error={new Error('tidemark:{"code":"NO_SPACE","message":"disk full","hint":"free space"}')} />);
    expect(screen.getByTestId('error-note').textContent).toBe('disk fullfree space');
    cleanup();
    render(<ErrorNote error={new Error('something odd')} />);
    expect(screen.getByTestId('error-note').textContent).toContain('something odd');
  });

  it('renders nothing without an error', () => {
    const { container } = render(<ErrorNote error={undefined} />);
    expect(container.innerHTML).toBe('');
  });
});

describe('EventsScreen', () => {
  it('lists newest first and filters by text', () => {
    render(<EventsScreen events={events} />);
    const rows = () => screen.getAllByTestId('event-row').map((r) => r.textContent);
    expect(rows()[0]).toContain('disk full');
    expect(rows()).toHaveLength(3);
    fireEvent.change(screen.getByTestId('events-filter'), { target: { value: 'moos' } });
    expect(rows()).toEqual([expect.stringContaining('MOOS recovered')]);
    expect(screen.getByRole('button', { name: /Export 1 as JSON/ })).toBeTruthy();
  });

  it('says what to do when there are no events', () => {
    render(<EventsScreen events={[]} />);
    expect(screen.getByTestId('empty-state').textContent).toMatch(/Start the write generator/);
  });
});

describe('VolumesScreen', () => {
  const overview: OverviewDto = {
    homeDir: '/h',
    volumes: [
      {
        path: '/h/lab/primary.img',
        volumeId: 'a'.repeat(16),
        sizeBytes: 2 ** 30,
        regionBytes: 2 ** 20,
        regions: 1024,
        realizedRegions: 7,
        pair: 'lab',
        role: 'primary',
      },
    ],
    pairs: [],
    generator: null,
    groups: [],
    groupsError: null,
  };

  it('shows each volume with size, regions, realization and role', () => {
    render(<VolumesScreen overview={overview} />);
    const row = screen.getByTestId('volume-row').textContent ?? '';
    expect(row).toContain('/h/lab/primary.img');
    expect(row).toContain('1 GiB');
    expect(row).toContain('1024 × 1 MiB');
    expect(row).toContain('lab: primary');
  });

  it('has an empty state naming the command to run', () => {
    render(<VolumesScreen overview={{ ...overview, volumes: [] }} />);
    expect(screen.getByTestId('empty-state').textContent).toContain('tidemark volume create');
  });
});

describe('GeneratorPanel', () => {
  let api: RecordingApi;
  const running: GeneratorStateDto = {
    running: true,
    settings: { pattern: 'hot-spot', writesPerSecond: 50, writeBytes: 8192, seed: 1 },
    writes: 12,
    bytesWritten: 98304,
    lastError: null,
  };

  beforeEach(() => {
    api = new RecordingApi({ generatorStart: (args) => ({ ...running, settings: args }), generatorStop: () => ({ ...running, running: false }) });
    window.tidemark = api;
  });

  it('starts the generator with the settings typed in', async () => {
    let changed = 0;
    render(<GeneratorPanel generator={null} onChanged={() => (changed += 1)} />);
    fireEvent.change(screen.getByTestId('generator-rate'), { target: { value: '75' } });
    await act(async () => {
      fireEvent.click(screen.getByTestId('generator-start'));
    });
    await waitFor(() => expect(changed).toBe(1));
    expect(api.requests).toEqual([{ verb: 'generatorStart', args: { pattern: 'random', writesPerSecond: 75, writeBytes: 65536, seed: 1 } }]);
  });

  it('shows the running state and stops on request', async () => {
    render(<GeneratorPanel generator={running} onChanged={() => undefined} />);
    expect(screen.getByTestId('generator-state').textContent).toBe('running: 12 writes, 96 KiB written');
    await act(async () => {
      fireEvent.click(screen.getByTestId('generator-stop'));
    });
    expect(api.requests.map((r) => r.verb)).toEqual(['generatorStop']);
  });

  it('shows the engine error in context', async () => {
    const failing = new RecordingApi({});
    failing.request = async () => {
      throw new ApiError({ code: 'USAGE', message: 'invalid write generator settings', hint: 'use 1 to 5000 writes/s' });
    };
    window.tidemark = failing;
    render(<GeneratorPanel generator={null} onChanged={() => undefined} />);
    await act(async () => {
      fireEvent.click(screen.getByTestId('generator-start'));
    });
    await waitFor(() => expect(screen.getByTestId('error-note').textContent).toContain('use 1 to 5000 writes/s'));
  });
});

describe('Heatmap', () => {
  it('names the hovered region, its bytes and state', () => {
    const words = new Uint32Array(32);
    words[0] = 0b10; // region 1 out of sync
    render(<Heatmap bits={{ regionCount: 1024, regionBytes: 2 ** 20, words }} setLabel="out of sync" heightPx={100} />);
    const canvas = screen.getByTestId('heatmap-canvas');
    canvas.getBoundingClientRect = () => ({ left: 0, top: 0, right: 800, bottom: 100, width: 800, height: 100, x: 0, y: 0, toJSON: () => '' });
    // 1024 regions in 800×100 px: 8 px cells, 100 per row; (12, 3) is the second cell.
    fireEvent.mouseMove(canvas, { clientX: 12, clientY: 3 });
    expect(screen.getByTestId('heatmap-hover').textContent).toBe('region 1: bytes 1 MiB – 2 MiB (offset 1048576): out of sync');
    fireEvent.mouseMove(canvas, { clientX: 20, clientY: 3 });
    expect(screen.getByTestId('heatmap-hover').textContent).toMatch(/^region 2: .*: in sync$/);
    expect(screen.getByTestId('heatmap-view').textContent).toContain('showing regions 0–1023 of 1024');
    fireEvent.click(screen.getByRole('button', { name: 'zoom in' }));
    expect(screen.getByTestId('heatmap-view').textContent).toContain('showing regions 256–767 of 1024');
  });
});

// @vitest-environment happy-dom
// The Seeding screen in a DOM: an export's media check (a failing one blocks the export), its
// progress with rate and ETA, then "safe to remove the media"; verify → import → resync with the
// resync's progress and result shown on this screen; Browse… through the native chooser in
// Electron, disabled (saying why) in web mode.
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import type { ExportPreflightDto, OverviewDto, PairDto, SeedingTaskDto, SyncStateDto } from '../../src-main/console-api';
import { browseUnavailable, SeedingScreen, seedingPollMs } from '../../src-renderer/screens/SeedingScreen';
import { RecordingApi } from './fake-api';

afterEach(() => {
  cleanup();
  delete window.tidemark;
});

const MiB = 2 ** 20;
const slow = { timeout: 4000 };

function pair(sync: SyncStateDto | null = null): PairDto {
  return {
    name: 'seed',
    mode: 'continuous',
    primary: '/d/a.img',
    secondary: '/d/b.img',
    regionBytes: MiB,
    regions: 16,
    tracking: true,
    oosRegions: 0,
    moosRegions: 0,
    lagBytes: 0,
    writesTracked: 0,
    lastSync: null,
    sync,
  };
}

const overviewWith = (sync: SyncStateDto | null = null): OverviewDto => ({
  homeDir: '/h',
  volumes: [],
  pairs: [pair(sync)],
  generator: null,
  groups: [],
  groupsError: null,
});

function task(kind: SeedingTaskDto['kind'], extra: Partial<SeedingTaskDto>): SeedingTaskDto {
  return { id: 1, kind, dir: '/media/usb/seed', volume: null, running: false, startedAtMs: 0, progress: null, result: null, error: null, ...extra };
}

const preflightOk: ExportPreflightDto = {
  dir: '/media/usb/seed',
  neededBytes: 8 * MiB,
  availableBytes: 900 * MiB,
  fat: false,
  splitBytes: 4095 * MiB,
  ok: true,
  problem: null,
};

describe('SeedingScreen: export', () => {
  it('checks the media, exports with progress, rate and ETA, then says the media is safe to remove', async () => {
    let tasks: SeedingTaskDto[] = [];
    const api = new RecordingApi({
      seedingTasks: () => tasks,
      exportPreflight: () => preflightOk,
      imageExport: () => task('export', { running: true }),
    });
    window.tidemark = api;
    render(<SeedingScreen overview={overviewWith()} />);
    expect((screen.getByTestId('export-start') as HTMLButtonElement).disabled).toBe(true); // not before the media check
    fireEvent.change(screen.getByTestId('export-source'), { target: { value: 'seed' } });
    fireEvent.change(screen.getByTestId('export-dir'), { target: { value: '/media/usb/seed' } });
    fireEvent.click(screen.getByTestId('export-check'));
    await waitFor(() => expect(screen.getByTestId('export-preflight').textContent).toBe('Needs up to 8 MiB; 900 MiB free.'));
    await waitFor(() => expect((screen.getByTestId('export-start') as HTMLButtonElement).disabled).toBe(false));
    fireEvent.click(screen.getByTestId('export-start'));
    await waitFor(() => expect(api.requests).toContainEqual({ verb: 'imageExport', args: { source: 'seed', dir: '/media/usb/seed', splitBytes: 4095 * MiB } }));

    tasks = [task('export', { running: true, progress: { phase: 'export', bytesDone: 3 * MiB, bytesTotal: 8 * MiB, bytesPerSecond: 2 * MiB, etaMs: 2600 } })];
    await waitFor(() => expect(screen.getByTestId('task-export-running').textContent).toMatch(/^export: 3 MiB of 8 MiB at 2 MiB\/s · ETA 3s/), slow);
    expect(within(screen.getByTestId('task-export-running')).getByRole('progressbar').getAttribute('aria-valuenow')).toBe('37.5');
    expect(screen.queryByTestId('task-export-done')).toBeNull();
    expect((screen.getByTestId('export-start') as HTMLButtonElement).disabled).toBe(true); // one export at a time

    tasks = [task('export', { result: { storedRegions: 8, regions: 16, bytesStored: 8 * MiB, manifestSha256: 'ab'.repeat(32) } })];
    await waitFor(
      () =>
        expect(screen.getByTestId('task-export-done').textContent).toBe(
          `Exported 8 of 16 regions (8 MiB) into /media/usb/seed. Manifest SHA-256 ${'ab'.repeat(32)}. Safe to remove the media.`,
        ),
      slow,
    );
    expect(screen.queryByTestId('task-export-running')).toBeNull();
  });

  it('a media check that fails is shown as an error with the problem and blocks the export', async () => {
    const api = new RecordingApi({
      seedingTasks: () => [],
      exportPreflight: () => ({ ...preflightOk, availableBytes: MiB, ok: false, problem: 'the media has 1 MiB free; the image needs up to 8 MiB' }),
      imageExport: () => task('export', { running: true }),
    });
    window.tidemark = api;
    render(<SeedingScreen overview={overviewWith()} />);
    fireEvent.change(screen.getByTestId('export-dir'), { target: { value: '/media/small' } });
    fireEvent.click(screen.getByTestId('export-check'));
    const alert = await screen.findByTestId('export-preflight');
    expect(alert.textContent).toBe('Needs up to 8 MiB; 1 MiB free. the media has 1 MiB free; the image needs up to 8 MiB.');
    expect(alert.className).toMatch(/colorError|standardError/);
    expect((screen.getByTestId('export-start') as HTMLButtonElement).disabled).toBe(true);
    fireEvent.click(screen.getByTestId('export-start'));
    expect(api.requests.map((r) => r.verb)).not.toContain('imageExport');
  });
});

describe('SeedingScreen: import', () => {
  it('verify → import → resync, the resync’s progress and result shown under its button', async () => {
    let tasks: SeedingTaskDto[] = [];
    let sync: SyncStateDto = { pair: 'seed', method: 'auto', running: true, startedAtMs: 1000, progress: null, summary: null, error: null };
    const api = new RecordingApi({
      seedingTasks: () => tasks,
      imageVerify: () => task('verify', { running: true }),
      imageImport: () => task('import', { running: true }),
      syncStart: () => sync,
      overview: () => overviewWith(sync),
    });
    window.tidemark = api;
    render(<SeedingScreen overview={overviewWith()} />);
    fireEvent.change(screen.getByTestId('import-dir'), { target: { value: '/media/usb/seed' } });
    fireEvent.click(screen.getByTestId('import-verify'));
    await waitFor(() => expect(api.requests).toContainEqual({ verb: 'imageVerify', args: { dir: '/media/usb/seed' } }));
    tasks = [task('verify', { result: { ok: true, regions: 16, manifestSha256: 'cd'.repeat(32) } })];
    await waitFor(() => expect(screen.getByTestId('task-verify-done').textContent).toMatch(/^The image is intact: 16 regions/), slow);

    fireEvent.mouseDown(screen.getByRole('combobox', { name: /Into the secondary of/ }));
    fireEvent.click(await screen.findByRole('option', { name: 'seed: /d/b.img' }));
    fireEvent.click(screen.getByTestId('import-start'));
    await waitFor(() => expect(api.requests).toContainEqual({ verb: 'imageImport', args: { dir: '/media/usb/seed', target: '/d/b.img' } }));
    expect(screen.queryByTestId('import-resync')).toBeNull(); // not before the import finished
    tasks = [...tasks, task('import', { id: 2, volume: '/d/b.img', result: { regionsTransferred: 8, bytesTransferred: 8 * MiB, regionsReclaimed: 0 } })];
    await waitFor(() => expect(screen.getByTestId('task-import-done').textContent).toMatch(/^Imported 8 regions \(8 MiB\) into \/d\/b\.img/), slow);

    fireEvent.click(screen.getByTestId('import-resync'));
    await waitFor(() => expect(api.requests).toContainEqual({ verb: 'syncStart', args: { pair: 'seed', method: 'auto' } }));
    await waitFor(() => expect(within(screen.getByTestId('import-resync-view')).getByTestId('sync-progress').textContent).toBe('starting…'));
    sync = {
      ...sync,
      progress: {
        method: 'realized',
        round: 0,
        phase: 'pass',
        regionsDone: 6,
        regionsTotal: 16,
        regionsTransferred: 1,
        bytesTransferred: MiB,
        bytesPerSecond: 4 * MiB,
        etaMs: 1600,
        marked: 0,
      },
    };
    await waitFor(
      () =>
        expect(within(screen.getByTestId('import-resync-view')).getByTestId('sync-progress').textContent).toBe(
          'realized, round 1, pass: 6 of 16 regions · sent 1 MiB at 4 MiB/s · ETA 2s',
        ),
      slow,
    );
    expect((screen.getByTestId('import-resync') as HTMLButtonElement).disabled).toBe(true);
    sync = {
      ...sync,
      running: false,
      summary: {
        method: 'realized',
        regions: 16,
        regionsTransferred: 2,
        bytesTransferred: 2 * MiB,
        regionsReclaimed: 0,
        pendingRegions: 0,
        pointInTime: '2026-11-24T10:00:00.000Z',
        durationMs: 800,
        rounds: 1,
        resumed: false,
      },
    };
    await waitFor(
      () =>
        expect(within(screen.getByTestId('import-resync-view')).getByTestId('sync-summary').textContent).toMatch(
          /^Synced \(realized\): 2 of 16 regions sent \(2 MiB\)/,
        ),
      slow,
    );
    expect(screen.getByTestId('import-resync-view').textContent).toMatch(/^Resync of seed/);
  });
});

describe('SeedingScreen: polling', () => {
  it('asks for the tasks every 3 s while none runs, twice a second while one does', async () => {
    let tasks: SeedingTaskDto[] = [];
    const api = new RecordingApi({ seedingTasks: () => tasks });
    window.tidemark = api;
    const polls = () => api.requests.filter((r) => r.verb === 'seedingTasks').length;
    render(<SeedingScreen overview={overviewWith()} />);
    expect(seedingPollMs).toEqual({ running: 500, idle: 3000 });
    await new Promise((resolve) => setTimeout(resolve, 1600));
    expect(polls()).toBe(1); // the first ask; the next is due at 3 s
    tasks = [task('export', { running: true })];
    await new Promise((resolve) => setTimeout(resolve, 2600)); // the 3 s ask sees it running
    const atRunning = polls();
    await new Promise((resolve) => setTimeout(resolve, 1700)); // three 500 ms turns, room for a slow one
    expect(polls() - atRunning).toBeGreaterThanOrEqual(2);
  });
});

describe('SeedingScreen: Browse…', () => {
  it('web mode: both Browse… buttons are disabled and say why', () => {
    window.tidemark = new RecordingApi({ seedingTasks: () => [] });
    render(<SeedingScreen overview={overviewWith()} />);
    for (const id of ['export-browse', 'import-browse']) {
      const button = screen.getByTestId(id) as HTMLButtonElement;
      expect(button.disabled).toBe(true);
      expect(button.getAttribute('aria-label')).toBe(`Browse… (${browseUnavailable})`);
    }
  });

  it('Electron: the native chooser fills the directory (from the one typed); a cancel leaves it', async () => {
    const api = new RecordingApi({ seedingTasks: () => [] });
    const asked: unknown[] = [];
    let answer: string | null = '/media/usb/seed';
    Object.assign(api, { pickDirectory: async (options: unknown) => (asked.push(options), answer) });
    window.tidemark = api;
    render(<SeedingScreen overview={overviewWith()} />);
    fireEvent.change(screen.getByTestId('export-dir'), { target: { value: '/media' } });
    fireEvent.click(screen.getByTestId('export-browse'));
    await waitFor(() => expect((screen.getByTestId('export-dir') as HTMLInputElement).value).toBe('/media/usb/seed'));
    expect(asked).toEqual([{ title: 'Export the seed image into', defaultPath: '/media' }]);
    fireEvent.click(screen.getByTestId('import-browse'));
    await waitFor(() => expect((screen.getByTestId('import-dir') as HTMLInputElement).value).toBe('/media/usb/seed'));
    expect(asked[1]).toEqual({ title: 'Import the seed image from' });
    answer = null;
    fireEvent.click(screen.getByTestId('import-browse'));
    await waitFor(() => expect(asked).toHaveLength(3));
    expect((screen.getByTestId('import-dir') as HTMLInputElement).value).toBe('/media/usb/seed');
  });
});

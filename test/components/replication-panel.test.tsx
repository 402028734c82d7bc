// @vitest-environment happy-dom
// The Pair detail's replication panel in a DOM: each state it shows (stopped, catching up under
// a protective snapshot, in sync, periodic, failed, tracking unreachable), what Start and Stop
// ask the engine, its ~2 Hz polling (paused while the page is hidden), and the lag chart.
import { act, cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { LagSampleDto, PairDto, ReplicationStateDto, ReplicationViewDto, TrackingStateDto } from '../../src-main/console-api';
import { LagChart, lagChartGeometry, niceCeilBytes } from '../../src-renderer/components/LagChart';
import { ReplicationPanel, replicationPhase } from '../../src-renderer/screens/ReplicationPanel';
import { RecordingApi } from './fake-api';

const MiB = 2 ** 20;

afterEach(() => {
  cleanup();
  Reflect.deleteProperty(document, 'visibilityState');
});

function pair(extra: Partial<PairDto> = {}): PairDto {
  return {
    name: 'field',
    mode: 'continuous',
    primary: '/d/a.img',
    secondary: '/d/b.img',
    regionBytes: MiB,
    regions: 32,
    tracking: true,
    oosRegions: 0,
    moosRegions: 0,
    lagBytes: 0,
    writesTracked: 0,
    lastSync: { method: 'tardy', finishedAt: '2026-11-23T10:00:00.000Z', pointInTime: '2026-11-23T10:00:00.000Z' },
    sync: null,
    ...extra,
  };
}

const tracking: TrackingStateDto = {
  regionCount: 32,
  oosRegions: 5,
  inFlightRegions: 0,
  moosRegions: 21,
  oldestUnshippedMs: 65_000,
  recoveredRegions: 0,
  writes: 7,
  moosDestages: 3,
  predictRegions: 16,
};

function samples(count: number, lagBytes: (i: number) => number, bytesPerSecond: (i: number) => number): LagSampleDto[] {
  return Array.from({ length: count }, (_, i) => ({
    atMs: 1_000_000 + i * 1000,
    lagRegions: lagBytes(i) / MiB,
    lagBytes: lagBytes(i),
    oldestUnshippedMs: 0,
    bytesPerSecond: bytesPerSecond(i),
    moosRegions: 0,
  }));
}

function running(extra: Partial<ReplicationStateDto> = {}, progress: Partial<NonNullable<ReplicationStateDto['progress']>> = {}): ReplicationStateDto {
  return {
    pair: 'field',
    running: true,
    paused: false,
    startedAtMs: Date.UTC(2026, 10, 23, 10, 0, 0),
    limitRateBytesPerSecond: null,
    progress: {
      state: 'catching-up',
      oosRegions: 3,
      inFlightRegions: 2,
      moosRegions: 21,
      lagBytes: 5 * MiB,
      oldestUnshippedMs: 4000,
      regionsTransferred: 2,
      bytesTransferred: 2 * MiB,
      bytesPerSecond: 8 * MiB,
      etaMs: 1000,
      backlogRegions: 7,
      protectSnapshotId: 'snap-0001',
      path: 'relayed',
      ...progress,
    },
    history: samples(
      5,
      (i) => (5 - i) * MiB,
      () => 8 * MiB,
    ),
    summary: null,
    error: null,
    cycles: [],
    group: null,
    once: false,
    cycleProgress: null,
    cycleStartedAtMs: null,
    lastGroupCycle: null,
    retrying: null,
    ...extra,
  };
}

const cycle = (n: number) => ({
  cycle: n,
  pointInTime: new Date(Date.UTC(2026, 10, 23, 10, 0, n)).toISOString(),
  regionsTransferred: n,
  bytesTransferred: n * MiB,
  durationMs: 1500,
  finishedAtMs: 0,
});

const groupCycle = {
  group: 'db',
  pointInTime: new Date(Date.UTC(2026, 10, 25, 3, 0, 0)).toISOString(),
  members: [
    { pair: 'field', cycle: 4, regionsTransferred: 2, bytesTransferred: 2 * MiB },
    { pair: 'logs', cycle: 7, regionsTransferred: 0, bytesTransferred: 0 },
  ],
  regionsTransferred: 2,
  bytesTransferred: 2 * MiB,
  durationMs: 1200,
};

function install(view: Partial<ReplicationViewDto>): RecordingApi {
  const full: ReplicationViewDto = {
    pair: 'field',
    dataPath: 'local',
    state: null,
    tracking,
    trackingError: null,
    roleChange: null,
    group: null,
    groupError: null,
    ...view,
  };
  const api = new RecordingApi({
    replicationState: () => full,
    replicationStart: () => running(),
    replicationStop: () => ({ ...running(), running: false }),
    replicationPause: () => ({ ...running(), running: false, paused: true }),
    replicationResume: () => running(),
  });
  window.tidemark = api;
  return api;
}

const text = (testId: string) => screen.getByTestId(testId).textContent ?? '';

describe('ReplicationPanel', () => {
  it('a remote primary whose agent holds the pair’s key: the direct path is shown', async () => {
    install({ dataPath: 'direct' });
    render(<ReplicationPanel pair={pair()} />);
    await waitFor(() =>
      expect(text('replication-path')).toMatch(/^Path in use: direct — the primary’s agent writes to the secondary’s over the pair’s own SSH key/),
    );
  });

  it('stopped: lag and crash cost from the primary’s tracking, local path, Start with the rate limit typed in', async () => {
    const api = install({});
    render(<ReplicationPanel pair={pair()} />);
    await waitFor(() => expect(text('replication-lag')).toBe('Lag: 5 regions (5 MiB), oldest unshipped write 1:05 old'));
    expect(text('replication-state')).toBe('stopped');
    expect(text('replication-mode')).toBe('continuous');
    expect(text('replication-rate')).toBe('Rate: not shipping');
    expect(text('replication-crash-cost')).toMatch(/^Crash cost now: 21 MOOS regions × 1 MiB = 21 MiB/);
    expect(text('replication-crash-cost')).toContain('What a crash of the primary’s agent this instant would resend');
    expect(text('replication-path')).toBe('Path in use: local — the primary is on this machine; regions go from it to the secondary.');
    expect(text('replication-protect')).toMatch(/^Protective snapshot: known while replication runs/);
    expect(screen.queryByTestId('replication-shipped')).toBeNull(); // no run yet
    expect(screen.getByTestId('lag-chart-empty')).toBeTruthy();

    fireEvent.change(screen.getByTestId('replication-limit'), { target: { value: '2.5' } });
    await act(async () => {
      fireEvent.click(screen.getByTestId('replication-start'));
    });
    expect(api.requests.filter((r) => r.verb === 'replicationStart')).toEqual([
      { verb: 'replicationStart', args: { pair: 'field', limitRateBytesPerSecond: 2.5 * MiB } },
    ]);
  });

  it('a bad rate limit disables Start; none typed starts without a limit', async () => {
    const api = install({});
    render(<ReplicationPanel pair={pair()} />);
    fireEvent.change(screen.getByTestId('replication-limit'), { target: { value: '-1' } });
    expect((screen.getByTestId('replication-start') as HTMLButtonElement).disabled).toBe(true);
    fireEvent.change(screen.getByTestId('replication-limit'), { target: { value: '' } });
    await act(async () => {
      fireEvent.click(screen.getByTestId('replication-start'));
    });
    expect(api.requests.find((r) => r.verb === 'replicationStart')?.args).toEqual({ pair: 'field' });
  });

  it('catching up over a relayed path: the shipper’s figures, the protective snapshot, the chart, and Stop', async () => {
    const api = install({ dataPath: 'relayed', state: running({ limitRateBytesPerSecond: 16 * MiB }) });
    render(<ReplicationPanel pair={pair({ secondary: 'dr:/srv/b.img' })} />);
    await waitFor(() => expect(text('replication-state')).toBe('catching up'));
    expect(text('replication-lag')).toBe('Lag: 5 regions (5 MiB), oldest unshipped write 4s old');
    expect(text('replication-rate')).toBe('Rate: 8 MiB/s · ETA 1s · limited to 16 MiB/s');
    expect(text('replication-shipped')).toMatch(/^Shipped 2 regions \(2 MiB\) since /);
    expect(text('replication-protect')).toMatch(/^Protective snapshot held on the secondary \(snap-0001\)/);
    expect(text('replication-path')).toBe(
      'Path in use: relayed through this console — read from the primary’s agent, written to the secondary’s (`tidemark pair link` makes it direct).',
    );
    expect((screen.getByTestId('replication-limit') as HTMLInputElement).value).toBe('16');
    expect(screen.getByTestId('lag-chart-lag').getAttribute('points')?.split(' ')).toHaveLength(5);
    expect(text('lag-chart-lag-max')).toBe('5 MiB');
    expect(text('lag-chart-rate-max')).toBe('10 MiB/s');
    await act(async () => {
      fireEvent.click(screen.getByTestId('replication-stop'));
    });
    expect(api.requests.filter((r) => r.verb === 'replicationStop')).toEqual([{ verb: 'replicationStop', args: { pair: 'field' } }]);
  });

  it('Pause while running; paused: the chip says so, the limit and chart stay, Resume and Stop are offered, Start is not', async () => {
    const history = samples(
      30,
      (i) => (30 - i) * MiB,
      () => 4 * MiB,
    );
    const api = install({ state: running({ limitRateBytesPerSecond: 2 * MiB, history }) });
    const view = render(<ReplicationPanel pair={pair()} />);
    await waitFor(() => expect(screen.getByTestId('replication-pause')).toBeTruthy());
    await act(async () => {
      fireEvent.click(screen.getByTestId('replication-pause'));
    });
    expect(api.requests.filter((r) => r.verb === 'replicationPause')).toEqual([{ verb: 'replicationPause', args: { pair: 'field' } }]);
    view.unmount();

    const resumed = install({ state: { ...running({ limitRateBytesPerSecond: 2 * MiB, history }), running: false, paused: true } });
    render(<ReplicationPanel pair={pair()} />);
    await waitFor(() => expect(text('replication-state')).toBe('paused'));
    expect(text('replication-paused-note')).toMatch(/^Paused: nothing ships, writes are still tracked/);
    expect((screen.getByTestId('replication-limit') as HTMLInputElement).value).toBe('2');
    expect(screen.queryByTestId('replication-start')).toBeNull();
    expect(screen.queryByTestId('replication-pause')).toBeNull();
    expect(screen.getByTestId('replication-stop')).toBeTruthy();
    expect(screen.queryByTestId('lag-chart-empty')).toBeNull(); // the run's chart is kept
    await act(async () => {
      fireEvent.click(screen.getByTestId('replication-resume'));
    });
    expect(resumed.requests.filter((r) => r.verb === 'replicationResume')).toEqual([{ verb: 'replicationResume', args: { pair: 'field' } }]);
  });

  it('in sync: no lag, ETA none, no snapshot held', async () => {
    install({
      state: running({}, { state: 'in-sync', oosRegions: 0, inFlightRegions: 0, lagBytes: 0, etaMs: null, protectSnapshotId: null, regionsTransferred: 7 }),
      tracking: { ...tracking, oosRegions: 0, oldestUnshippedMs: 0 },
    });
    render(<ReplicationPanel pair={pair()} />);
    await waitFor(() => expect(text('replication-state')).toBe('in sync'));
    expect(text('replication-lag')).toBe('Lag: none — every tracked write is on the secondary');
    expect(text('replication-rate')).toMatch(/· ETA —$/);
    expect(text('replication-shipped')).toMatch(/^Shipped 7 regions \(2 MiB\)/);
    expect(text('replication-protect')).toMatch(/^No protective snapshot/);
  });

  it('a run that failed: stopped, what it shipped, and the engine’s message and hint', async () => {
    install({
      state: {
        ...running(),
        running: false,
        error: { code: 'NOT_FOUND', message: 'volume /d/b.img is gone', hint: 'recreate the secondary, then sync' },
      },
    });
    render(<ReplicationPanel pair={pair()} />);
    await waitFor(() => expect(screen.getByTestId('error-note').textContent).toBe('volume /d/b.img is gonerecreate the secondary, then sync'));
    expect(text('replication-state')).toBe('stopped');
    expect(text('replication-shipped')).toMatch(/^Last run shipped 2 regions/);
    expect(screen.getByTestId('replication-start')).toBeTruthy();
  });

  it('a primary that cannot be reached: lag and crash cost unknown, the reason with its hint', async () => {
    install({
      dataPath: 'relayed',
      tracking: null,
      trackingError: { code: 'NOT_FOUND', message: 'host site-a is not one of this console’s hosts', hint: 'add site-a on the Hosts screen first' },
    });
    render(<ReplicationPanel pair={pair({ primary: 'site-a:/srv/a.img', tracking: false })} />);
    await waitFor(() => expect(screen.getByTestId('error-note').textContent).toContain('add site-a on the Hosts screen first'));
    expect(text('replication-lag')).toBe('Lag: unknown (the primary’s tracking is not available)');
    expect(text('replication-crash-cost')).toMatch(/^Crash cost now: unknown/);
  });

  it('a start the engine refuses shows its error in context', async () => {
    const api = install({});
    api.request = (async (verb: string) => {
      if (verb === 'replicationStart') throw new Error('tidemark:{"code":"BUSY","message":"pair field is already replicating","hint":"stop it first"}');
      return { pair: 'field', dataPath: 'local', state: null, tracking, trackingError: null, roleChange: null };
    }) as RecordingApi['request'];
    render(<ReplicationPanel pair={pair()} />);
    await act(async () => {
      fireEvent.click(screen.getByTestId('replication-start'));
    });
    await waitFor(() => expect(screen.getByTestId('error-note').textContent).toBe('pair field is already replicatingstop it first'));
  });

  it('periodic pairs: explains cycles, offers Start, and lists applied cycles newest first', async () => {
    install({});
    render(<ReplicationPanel pair={pair({ mode: 'periodic' })} />);
    expect(text('replication-periodic')).toContain('the secondary always holds the primary as of a cycle');
    expect(screen.getByTestId('replication-start')).toBeTruthy();
    expect(screen.queryByTestId('lag-chart-empty')).toBeNull();
    expect(text('cycle-history-empty')).toBe('No cycle applied by this console yet.');
  });

  it('periodic pairs: the cycle history, and what the run applied', async () => {
    install({ state: running({ cycles: [cycle(1), cycle(2)], progress: null }) });
    render(<ReplicationPanel pair={pair({ mode: 'periodic' })} />);
    await waitFor(() => expect(screen.getByTestId('cycle-history')).toBeTruthy());
    const lines = screen.getByTestId('cycle-history').querySelectorAll('[data-testid^="cycle-"]');
    expect(Array.from(lines, (l) => l.getAttribute('data-testid'))).toEqual(['cycle-2', 'cycle-1']);
    expect(text('cycle-2')).toMatch(/^Cycle 2: 2 regions \(2 MiB\) in/);
    expect(text('replication-state')).toBe('waiting for the next cycle');
    expect(text('replication-shipped')).toMatch(/^Applied 3 regions \(3 MiB\) in 2 cycles since /);
    expect(text('replication-rate')).toBe('Rate: per cycle, while one is under way');
  });

  it('periodic pairs: Run one cycle asks for one; a cycle under way shows its phase, regions, rate and ETA', async () => {
    const api = install({});
    const view = render(<ReplicationPanel pair={pair({ mode: 'periodic' })} />);
    await act(async () => {
      fireEvent.click(screen.getByTestId('replication-once'));
    });
    expect(api.requests.filter((r) => r.verb === 'replicationStart')).toEqual([{ verb: 'replicationStart', args: { pair: 'field', once: true } }]);
    view.unmount();

    const cycleProgress = { pair: 'field', cycle: 3, phase: 'shipping' as const, regionsDone: 4, regionsTotal: 12, bytesTransferred: 4 * MiB };
    // The clock stands still (only Date: the panel's polling timers run): 4 of 12 regions in 2 s.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.UTC(2026, 10, 25, 12, 0, 0));
      install({ state: running({ progress: null, once: true, cycleProgress, cycleStartedAtMs: Date.now() - 2000 }) });
      render(<ReplicationPanel pair={pair({ mode: 'periodic' })} />);
      await waitFor(() => expect(text('replication-state')).toBe('cycle under way'));
      expect(text('cycle-progress')).toBe('Cycle 3 — shipping, 4 of 12 regions (4 MiB, 2 MiB/s · ETA 4s)');
    } finally {
      vi.useRealTimers();
    }
  });

  it('a periodic cycle being retried: the chip says retrying, and why since when', async () => {
    const cycleProgress = { pair: 'field', cycle: 5, phase: 'shipping' as const, regionsDone: 1, regionsTotal: 3, bytesTransferred: MiB };
    const retrying = { message: 'cycle of field interrupted (link to dr dropped); resuming in 400 ms', sinceMs: Date.UTC(2026, 10, 25, 12, 0, 0) };
    install({ state: running({ progress: null, cycles: [cycle(4)], cycleProgress, retrying }) });
    render(<ReplicationPanel pair={pair({ mode: 'periodic' })} />);
    await waitFor(() => expect(text('replication-state')).toBe('retrying'));
    expect(text('cycle-retrying')).toMatch(/^Retrying since .+: cycle of field interrupted \(link to dr dropped\); resuming in 400 ms$/);
  });

  it('a pair in a consistency group: Start and Run one group cycle start the group’s run, which shows the member at work and the group’s cycle', async () => {
    const api = install({ group: { name: 'db', pairs: ['field', 'logs'], failedOver: [] } });
    const view = render(<ReplicationPanel pair={pair({ mode: 'periodic' })} />);
    await waitFor(() =>
      expect(text('replication-group')).toMatch(/^field replicates with consistency group db \(field, logs\): every cycle snapshots all their primaries/),
    );
    expect(text('replication-start')).toBe('Start group replication');
    expect(text('replication-once')).toBe('Run one group cycle');
    expect(screen.queryByTestId('replication-periodic')).toBeNull(); // "at the pair's interval" is not how it cycles
    fireEvent.change(screen.getByTestId('replication-limit'), { target: { value: '4' } });
    await act(async () => {
      fireEvent.click(screen.getByTestId('replication-once'));
    });
    expect(api.requests.filter((r) => r.verb === 'replicationStart')).toEqual([
      { verb: 'replicationStart', args: { pair: 'field', limitRateBytesPerSecond: 4 * MiB, once: true } },
    ]);
    view.unmount();

    const cycleProgress = { pair: 'logs', cycle: 8, phase: 'applying' as const, regionsDone: 3, regionsTotal: 3, bytesTransferred: 3 * MiB };
    install({
      group: { name: 'db', pairs: ['field', 'logs'], failedOver: [] },
      state: running({ progress: null, group: 'db', cycles: [cycle(4)], cycleProgress, cycleStartedAtMs: Date.now(), lastGroupCycle: groupCycle }),
    });
    render(<ReplicationPanel pair={pair({ mode: 'periodic' })} />);
    // Applying moves no bytes over the link: no rate, no ETA (the cycle's bytes divided by the apply's time would be nonsense).
    await waitFor(() => expect(text('cycle-progress')).toBe('Group db: logs’s cycle 8 — applying, 3 of 3 regions (3 MiB)'));
    expect(text('group-cycle-result')).toMatch(/^Group db: field cycle 4 \(2 regions\), logs cycle 7 \(0 regions\) in 1s — the secondaries hold/);
    expect(text('cycle-4')).toMatch(/^Cycle 4: 4 regions/); // this member's own cycles
    expect(screen.getByTestId('replication-stop')).toBeTruthy();
    expect(screen.queryByTestId('replication-once')).toBeNull();
  });

  it('tells its caller once per finished group cycle (the Failover card asks its options again)', async () => {
    const onGroupCycle = vi.fn();
    const state = running({ progress: null, group: 'db', lastGroupCycle: groupCycle });
    install({ group: { name: 'db', pairs: ['field', 'logs'], failedOver: [] }, state });
    render(<ReplicationPanel pair={pair({ mode: 'periodic' })} onGroupCycle={onGroupCycle} />);
    await waitFor(() => expect(onGroupCycle).toHaveBeenCalledTimes(1));
    await new Promise((resolve) => setTimeout(resolve, 1200)); // two more polls, the same cycle
    expect(onGroupCycle).toHaveBeenCalledTimes(1);
  });

  it('a member failed over: no group cycle until the group fails back; a damaged group record is named while the figures stay', async () => {
    install({ group: { name: 'db', pairs: ['field', 'logs'], failedOver: ['logs'] } });
    render(<ReplicationPanel pair={pair({ mode: 'periodic' })} />);
    await waitFor(() => expect(text('group-cycle-failed-over')).toMatch(/^logs failed over: the group cycles again once every pair is failed back/));
    expect((screen.getByTestId('replication-start') as HTMLButtonElement).disabled).toBe(true);
    expect((screen.getByTestId('replication-once') as HTMLButtonElement).disabled).toBe(true);
    cleanup();
    // A group run paused before the failover is not resumed onto the demoted old primary.
    install({
      group: { name: 'db', pairs: ['field', 'logs'], failedOver: ['logs'] },
      state: { ...running({ progress: null, group: 'db' }), running: false, paused: true },
    });
    render(<ReplicationPanel pair={pair({ mode: 'periodic' })} />);
    await waitFor(() => expect(text('replication-state')).toBe('paused'));
    await waitFor(() => expect((screen.getByTestId('replication-resume') as HTMLButtonElement).disabled).toBe(true));
    cleanup();
    install({ groupError: { code: 'METADATA_CORRUPT', message: 'groups/db.json is damaged', hint: 'restore it' } });
    render(<ReplicationPanel pair={pair({ mode: 'periodic' })} />);
    await waitFor(() => expect(screen.getByTestId('error-note').textContent).toBe('groups/db.json is damagedrestore it'));
    expect(text('replication-lag')).toMatch(/^Lag: /);
  });

  it('an ungrouped periodic pair has no group block', async () => {
    install({});
    render(<ReplicationPanel pair={pair({ mode: 'periodic' })} />);
    await waitFor(() => expect(screen.getByTestId('replication-lag')).toBeTruthy());
    expect(screen.queryByTestId('replication-group')).toBeNull();
    expect((screen.getByTestId('replication-start') as HTMLButtonElement).disabled).toBe(false);
  });

  it('no Start while a sync of the pair runs', () => {
    install({});
    render(
      <ReplicationPanel pair={pair({ sync: { pair: 'field', method: 'auto', running: true, startedAtMs: 0, progress: null, summary: null, error: null } })} />,
    );
    expect((screen.getByTestId('replication-start') as HTMLButtonElement).disabled).toBe(true);
  });

  it('no Start while a failback of the pair copies: it says why', async () => {
    install({ roleChange: 'failback' });
    render(<ReplicationPanel pair={pair()} />);
    await waitFor(() =>
      expect(text('replication-role-change')).toBe('A failback of this pair is running and does the copying: replication can start once it is done.'),
    );
    expect((screen.getByTestId('replication-start') as HTMLButtonElement).disabled).toBe(true);
  });

  it('polls replicationState at ~2 Hz while shown, not while the page is hidden', async () => {
    const api = install({});
    const polls = () => api.requests.filter((r) => r.verb === 'replicationState').length;
    render(<ReplicationPanel pair={pair()} />);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(polls()).toBeGreaterThanOrEqual(2);
    expect(polls()).toBeLessThanOrEqual(4);
    Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
    await new Promise((resolve) => setTimeout(resolve, 600)); // a poll in flight may land
    const hidden = polls();
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect(polls()).toBe(hidden);
    Reflect.deleteProperty(document, 'visibilityState');
    await waitFor(() => expect(polls()).toBeGreaterThan(hidden), { timeout: 2000 });
  });
});

describe('replicationPhase', () => {
  it('is the shipper’s state while running, starting before its first progress, stopped otherwise', () => {
    expect(replicationPhase(null)).toBe('stopped');
    expect(replicationPhase({ ...running(), running: false })).toBe('stopped');
    expect(replicationPhase({ ...running(), progress: null })).toBe('starting');
    for (const state of ['catching-up', 'shipping', 'in-sync', 'retrying'] as const) expect(replicationPhase(running({}, { state }))).toBe(state);
  });

  it('is the cycle under way, or waiting between cycles, for a run of periodic cycles', () => {
    const cycleProgress = { pair: 'field', cycle: 2, phase: 'freezing' as const, regionsDone: 0, regionsTotal: 0, bytesTransferred: 0 };
    expect(replicationPhase(running({ progress: null, cycleProgress }))).toBe('cycling');
    expect(replicationPhase(running({ progress: null, cycles: [cycle(1)] }))).toBe('between-cycles');
    expect(replicationPhase(running({ progress: null, group: 'db', lastGroupCycle: groupCycle }))).toBe('between-cycles');
    expect(replicationPhase({ ...running({ cycleProgress }), running: false })).toBe('stopped');
    expect(replicationPhase(running({ progress: null, cycleProgress, retrying: { message: 'link dropped', sinceMs: 0 } }))).toBe('retrying');
  });
});

describe('LagChart', () => {
  it('rounds each axis up to 1, 2 or 5 of a binary unit', () => {
    expect(niceCeilBytes(0)).toBe(1);
    expect(niceCeilBytes(3 * MiB)).toBe(5 * MiB);
    expect(niceCeilBytes(5 * MiB)).toBe(5 * MiB);
    expect(niceCeilBytes(11 * MiB)).toBe(20 * MiB);
    expect(niceCeilBytes(700 * MiB)).toBe(1000 * MiB);
    expect(niceCeilBytes(1500)).toBe(2 * 1024);
  });

  it('places the newest sample at the right edge, the oldest by age, and a value at its axis maximum at the top', () => {
    const g = lagChartGeometry(
      samples(
        61,
        (i) => (i === 0 ? 5 * MiB : 0),
        (i) => (i === 60 ? 2 * MiB : 0),
      ),
    );
    expect(g.spanMs).toBe(60_000);
    const lag = g.lagPoints.split(' ').map((p) => p.split(',').map(Number));
    const rate = g.ratePoints.split(' ').map((p) => p.split(',').map(Number));
    expect(lag).toHaveLength(61);
    expect(lag[0]).toEqual([72, 12]); // oldest at the left edge, at the top (its maximum)
    expect(lag[60]).toEqual([636, 172]); // newest at the right edge, zero
    expect(rate[60]).toEqual([636, 12]);
    // Fewer than a minute of samples do not stretch across the width.
    const short = lagChartGeometry(
      samples(
        3,
        () => MiB,
        () => MiB,
      ),
    );
    expect(short.lagPoints.split(' ')[0]!.split(',').map(Number)[0]).toBeCloseTo(636 - (2000 / 60_000) * 564, 1);
  });

  it('renders both series with axis labels, or says it fills in while there is no history', () => {
    render(
      <LagChart
        samples={samples(
          3,
          () => 3 * MiB,
          () => 700 * 1024,
        )}
      />,
    );
    expect(screen.getByTestId('lag-chart-lag')).toBeTruthy();
    expect(text('lag-chart-lag-max')).toBe('5 MiB');
    expect(text('lag-chart-rate-max')).toBe('1000 KiB/s');
    expect(screen.getByRole('img').getAttribute('aria-label')).toBe('lag up to 5 MiB and rate up to 1000 KiB/s over the last 1:00');
    cleanup();
    render(<LagChart samples={[]} />);
    expect(text('lag-chart-empty')).toMatch(/fills in while replication runs/);
  });
});

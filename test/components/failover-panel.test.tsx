// @vitest-environment happy-dom
// The Failover card in a DOM: what it offers for a reachable primary (Migrate, or a forced
// failover explained), an unreachable one (Fail over; Migrate disabled) and a failed-over pair
// (Fail back); the Migrate dialog's plan and what it asks the engine; the progress of a running
// migrate or failback (phase, regions, bytes, rate, ETA) polled until its result; a failure shown
// in context; Cancel while the task may stop; a pair in a consistency group (the group named in
// the dialog and the result, and what to run after failing back).
import { act, cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import type { FailbackDto, FailoverDto, MigratePlanDto, PairDto, RoleOptionsDto, RoleTaskDto } from '../../src-main/console-api';
import { FailoverPanel, RoleTaskProgress, failoverResult, roleTaskResult } from '../../src-renderer/screens/FailoverPanel';
import { RecordingApi } from './fake-api';

const MiB = 2 ** 20;

afterEach(cleanup);

const pair: PairDto = {
  name: 'field',
  mode: 'continuous',
  primary: '/d/a.img',
  secondary: '/d/b.img',
  regionBytes: MiB,
  regions: 64,
  tracking: true,
  oosRegions: 3,
  moosRegions: 3,
  lagBytes: 3 * MiB,
  writesTracked: 3,
  lastSync: null,
  sync: null,
};

function options(extra: Partial<RoleOptionsDto> = {}): RoleOptionsDto {
  return {
    pair: 'field',
    mode: 'continuous',
    generation: 1,
    failover: null,
    unfinishedMigrate: false,
    primary: { volref: '/d/a.img', reachable: true, error: null },
    secondary: { volref: '/d/b.img', reachable: true, error: null },
    group: null,
    task: null,
    ...extra,
  };
}

const plan: MigratePlanDto = {
  pair: 'field',
  regions: 64,
  regionBytes: MiB,
  unshippedRegions: 3,
  unshippedBytes: 3 * MiB,
  runs: [[4, 3]],
  maps: ['oos', 'in-flight'],
};

function task(extra: Partial<RoleTaskDto> = {}): RoleTaskDto {
  return {
    pair: 'field',
    kind: 'migrate',
    running: true,
    startedAtMs: 1,
    progress: null,
    failback: null,
    migrate: null,
    error: null,
    cancellable: false,
    cancelling: false,
    ...extra,
  };
}

const disabled = (testId: string) => (screen.getByTestId(testId) as HTMLButtonElement).disabled;

describe('FailoverPanel', () => {
  it('a reachable primary: Migrate offered first, the failover labelled forced; failback not yet', async () => {
    window.tidemark = new RecordingApi({ roleOptions: () => options() });
    render(<FailoverPanel pair={pair} onChanged={() => undefined} />);
    expect(screen.getByTestId('role-options').textContent).toBe('Checking whether the primary can be reached…');
    expect(disabled('migrate-open')).toBe(true);
    await waitFor(() =>
      expect(screen.getByTestId('role-options').textContent).toMatch(/^\/d\/a\.img can be reached: Migrate swaps the roles without losing a write/),
    );
    expect(disabled('migrate-open')).toBe(false);
    expect(screen.getByTestId('failover-open').textContent).toBe('Fail over (forced)…');
    expect(disabled('failback-open')).toBe(true);
    fireEvent.click(screen.getByTestId('failover-open'));
    expect(screen.getByTestId('failover-prefer-migrate').textContent).toMatch(/Migrate swaps the roles without losing a write/);
    expect((screen.getByTestId('failover-confirm') as HTMLButtonElement).disabled).toBe(true);
  });

  it('an unreachable primary: Migrate disabled, Fail over offered with the reason and what is at risk', async () => {
    window.tidemark = new RecordingApi({ roleOptions: () => options({ primary: { volref: 'site:/d/a.img', reachable: false, error: 'connection refused' } }) });
    render(<FailoverPanel pair={pair} onChanged={() => undefined} />);
    await waitFor(() =>
      expect(screen.getByTestId('role-options').textContent).toMatch(/^site:\/d\/a\.img cannot be reached \(connection refused\): Fail over promotes/),
    );
    expect(disabled('migrate-open')).toBe(true);
    expect(screen.getByTestId('failover-open').textContent).toBe('Fail over…');
    fireEvent.click(screen.getByTestId('failover-open'));
    expect(screen.getByTestId('failover-unreachable').textContent).toMatch(
      /cannot be reached \(connection refused\): its unshipped writes stay there until failback/,
    );
    expect(screen.getByTestId('failover-risk').textContent).toMatch(/OOS\/MOOS/);
  });

  it('failed over: only Fail back, and whether the old primary is back', async () => {
    window.tidemark = new RecordingApi({
      roleOptions: () =>
        options({
          generation: 2,
          failover: { atMs: Date.UTC(2026, 10, 24, 9), forced: true, phase: 'promoted' },
          secondary: { volref: '/d/a.img', reachable: true, error: null },
        }),
    });
    render(<FailoverPanel pair={pair} onChanged={() => undefined} />);
    await waitFor(() =>
      expect(screen.getByTestId('role-options').textContent).toMatch(
        /^Failed over \(forced\) at .*: fail back when \/d\/a\.img is back \(it can be reached now\)/,
      ),
    );
    expect([disabled('migrate-open'), disabled('failover-open'), disabled('failback-open')]).toEqual([true, true, false]);
    expect(screen.queryByTestId('failback-group-note')).toBeNull();
  });

  it('an interrupted migrate: says so and offers Migrate to finish it even with the primary refusing', async () => {
    window.tidemark = new RecordingApi({
      roleOptions: () => options({ unfinishedMigrate: true, primary: { volref: '/d/a.img', reachable: false, error: 'x' } }),
    });
    render(<FailoverPanel pair={pair} onChanged={() => undefined} />);
    await waitFor(() => expect(screen.getByTestId('role-unfinished-migrate').textContent).toMatch(/interrupted in its pause.*Migrate again to finish it/));
    expect(disabled('migrate-open')).toBe(false);
  });

  it('Migrate: the plan’s count, then migrateStart; progress with rate and ETA polled until the result', async () => {
    const polls: RoleTaskDto[] = [
      task({ progress: { phase: 'copy', regionsTransferred: 3, regionsTotal: 8, bytesTransferred: 3 * MiB, bytesPerSecond: MiB, etaMs: 5000 } }),
      task({
        running: false,
        progress: { phase: 'done', regionsTransferred: 8, regionsTotal: 8, bytesTransferred: 8 * MiB, bytesPerSecond: MiB, etaMs: 0 },
        migrate: {
          pair: 'field',
          newPrimary: '/d/b.img',
          oldPrimary: '/d/a.img',
          generation: 2,
          drainedRegions: 5,
          finalRegions: 3,
          bytesTransferred: 8 * MiB,
          pauseMs: 420,
          durationMs: 3000,
          resumed: false,
          checkedRegions: 64,
          checkDifferingRegions: 0,
          checkDiffering: [],
        },
      }),
    ];
    let changed = 0;
    const api = new RecordingApi({
      roleOptions: () => options(),
      migratePlan: () => plan,
      migrateStart: () => task(),
      roleTask: () => polls.shift() ?? null,
    });
    window.tidemark = api;
    render(<FailoverPanel pair={pair} onChanged={() => (changed += 1)} />);
    await waitFor(() => expect(disabled('migrate-open')).toBe(false));
    fireEvent.click(screen.getByTestId('migrate-open'));
    expect(screen.getByTestId('migrate-loading')).toBeTruthy();
    await waitFor(() =>
      expect(screen.getByTestId('migrate-count').textContent).toMatch(/^Unshipped now: 3 of 64 regions \(3 MiB\), from the primary’s oos ∪ in-flight/),
    );
    await act(async () => {
      fireEvent.click(screen.getByTestId('migrate-confirm'));
    });
    expect(api.requests.find((r) => r.verb === 'migrateStart')?.args).toEqual({ pair: 'field' });
    await waitFor(() => expect(screen.getByTestId('role-task-line').textContent).toBe('Migrating: copying — 3 of 8 regions, 3 MiB copied at 1 MiB/s, ETA 5s'), {
      timeout: 3000,
    });
    expect(screen.getByRole('progressbar', { name: 'migrate progress' }).getAttribute('aria-valuenow')).toBe('37.5');
    expect(disabled('migrate-open')).toBe(true);
    await waitFor(
      () =>
        expect(screen.getByTestId('failover-result').textContent).toMatch(
          /^Migrated: \/d\/b\.img is the primary \(generation 2\); 5 regions drained, 3 copied while writes were paused for 0s \(420 ms\)/,
        ),
      {
        timeout: 3000,
      },
    );
    expect(changed).toBe(1);
    expect(screen.queryByTestId('role-task-progress')).toBeNull();
    // The options are asked again after the change (the roles swapped).
    expect(api.requests.filter((r) => r.verb === 'roleOptions')).toHaveLength(2);
  });

  it('Fail back: starts it in the background with the survivor named after a split brain and the rate limit typed', async () => {
    const failbackPlan: FailbackDto = {
      pair: 'field',
      newPrimary: '/d/b.img',
      oldPrimary: '/d/a.img',
      regions: 64,
      regionBytes: MiB,
      resyncRegions: 5,
      resyncBytes: 5 * MiB,
      failbackRegions: 3,
      unshippedRegions: 2,
      runs: [[1, 5]],
      runsTotal: 1,
      splitBrain: { failoverAtMs: 1, oldPrimaryLastWriteAtMs: 2 },
      dryRun: true,
      regionsTransferred: 0,
      bytesTransferred: 0,
      durationMs: 1,
    };
    const api = new RecordingApi({
      roleOptions: () => options({ generation: 2, failover: { atMs: 1, forced: true, phase: 'promoted' } }),
      failbackPlan: () => failbackPlan,
      failbackStart: () =>
        task({ kind: 'failback', progress: { phase: 'prepare', regionsTransferred: 0, regionsTotal: 0, bytesTransferred: 0, bytesPerSecond: 0, etaMs: null } }),
      roleTask: () =>
        task({ kind: 'failback', progress: { phase: 'prepare', regionsTransferred: 0, regionsTotal: 0, bytesTransferred: 0, bytesPerSecond: 0, etaMs: null } }),
    });
    window.tidemark = api;
    render(<FailoverPanel pair={pair} onChanged={() => undefined} />);
    await waitFor(() => expect(disabled('failback-open')).toBe(false));
    await act(async () => {
      fireEvent.click(screen.getByTestId('failback-open'));
    });
    await waitFor(() => screen.getByTestId('failback-count'));
    fireEvent.click(screen.getByLabelText('/d/b.img (keep the old primary)'));
    fireEvent.change(screen.getByTestId('failback-limit'), { target: { value: '-1' } });
    fireEvent.change(screen.getByTestId('failback-confirm-name'), { target: { value: 'field' } });
    expect(disabled('failback-confirm')).toBe(true);
    fireEvent.change(screen.getByTestId('failback-limit'), { target: { value: '2.5' } });
    await act(async () => {
      fireEvent.click(screen.getByTestId('failback-confirm'));
    });
    expect(api.requests.find((r) => r.verb === 'failbackStart')?.args).toEqual({
      pair: 'field',
      discardChangesOn: '/d/b.img',
      limitRateBytesPerSecond: 2.5 * MiB,
    });
    expect(screen.getByTestId('role-task-line').textContent).toBe(
      'Failing back: demoting the old primary and marking the resync map, 0 B copied at 0 B/s, ETA unknown',
    );
  });

  it('a failed migrate: its message and hint in context, no result line', async () => {
    const failed = task({
      running: false,
      error: {
        code: 'IO',
        message: 'migrate of field stopped before the swap: 2 regions differ after the final copy',
        hint: 'investigate with `tidemark verify field`',
      },
    });
    window.tidemark = new RecordingApi({ roleOptions: () => options({ task: failed }) });
    render(<FailoverPanel pair={pair} onChanged={() => undefined} />);
    await waitFor(() =>
      expect(screen.getByTestId('error-note').textContent).toBe(
        'migrate of field stopped before the swap: 2 regions differ after the final copyinvestigate with `tidemark verify field`',
      ),
    );
    expect(screen.queryByTestId('failover-result')).toBeNull();
    expect(roleTaskResult(failed)).toBeNull();
  });

  it('a migrate whose check after the pause failed says so, with the regions, not just "Migrated"', () => {
    const migrate = {
      pair: 'field',
      newPrimary: '/d/b.img',
      oldPrimary: '/d/a.img',
      generation: 2,
      drainedRegions: 0,
      finalRegions: 1,
      bytesTransferred: MiB,
      pauseMs: 40,
      durationMs: 900,
      resumed: false,
      checkedRegions: 64,
      checkDifferingRegions: 2,
      checkDiffering: [5, 9],
    };
    expect(roleTaskResult(task({ running: false, migrate }))).toMatch(
      /^Migrated: .* CHECK FAILED: 2 of 64 regions of the new primary \(as promoted\) differ from \/d\/a\.img, .*\(regions 5, 9\); nothing was changed/,
    );
    expect(roleTaskResult(task({ running: false, migrate: { ...migrate, checkDifferingRegions: 0, checkDiffering: [] } }))).not.toMatch(/CHECK/);
  });
});

describe('FailoverPanel, a pair in a consistency group', () => {
  const periodic: PairDto = { ...pair, mode: 'periodic' };
  const group = { name: 'db', pairs: ['field', 'logs', 'index'], lastCycleAtMs: null };
  const unreachable = { volref: '/d/a.img', reachable: false, error: 'connection refused' };

  it('the Failover dialog says the whole group fails over at one instant, naming the other pairs; not for an ungrouped pair', async () => {
    window.tidemark = new RecordingApi({ roleOptions: () => options({ mode: 'periodic', primary: unreachable, group }) });
    render(<FailoverPanel pair={periodic} onChanged={() => undefined} />);
    await waitFor(() => expect(disabled('failover-open')).toBe(false));
    fireEvent.click(screen.getByTestId('failover-open'));
    expect(screen.getByTestId('failover-group').textContent).toBe(
      'field is in consistency group db with logs and index: Fail over promotes every secondary of the group, all holding the same instant of the group, not only /d/b.img. ' +
        'Each pair’s primary is demoted or left as it is, and what it had not shipped is at risk, as explained here for field.',
    );
    // The name typed is still the pair's, not the group's.
    fireEvent.change(screen.getByTestId('failover-confirm-name'), { target: { value: 'db' } });
    expect(disabled('failover-confirm')).toBe(true);
    fireEvent.change(screen.getByTestId('failover-confirm-name'), { target: { value: 'field' } });
    expect(disabled('failover-confirm')).toBe(false);
    expect(screen.queryByTestId('failback-group-note')).toBeNull(); // not failed over yet
    cleanup();

    window.tidemark = new RecordingApi({ roleOptions: () => options({ mode: 'periodic', primary: unreachable }) });
    render(<FailoverPanel pair={periodic} onChanged={() => undefined} />);
    await waitFor(() => expect(disabled('failover-open')).toBe(false));
    fireEvent.click(screen.getByTestId('failover-open'));
    expect(screen.getByTestId('failover-risk')).toBeTruthy();
    expect(screen.queryByTestId('failover-group')).toBeNull();
  });

  it('Fail over: asks for the pair; the result names the group, the pairs promoted and the one rolled forward from its seal', async () => {
    const result: FailoverDto = {
      pair: 'field',
      newPrimary: '/d/b.img',
      oldPrimary: '/d/a.img',
      generation: 3,
      oldPrimaryReachable: false,
      atRiskRegions: null,
      rolledBackRegions: 0,
      group: { name: 'db', pairs: ['field', 'logs', 'index'], rolledForward: [{ pair: 'logs', cycle: 7 }], abandonedCycle: false },
      durationMs: 40,
    };
    let changed = 0;
    const api = new RecordingApi({ roleOptions: () => options({ mode: 'periodic', primary: unreachable, group }), failover: () => result });
    window.tidemark = api;
    render(<FailoverPanel pair={periodic} onChanged={() => (changed += 1)} />);
    await waitFor(() => expect(disabled('failover-open')).toBe(false));
    fireEvent.click(screen.getByTestId('failover-open'));
    fireEvent.change(screen.getByTestId('failover-confirm-name'), { target: { value: 'field' } });
    await act(async () => {
      fireEvent.click(screen.getByTestId('failover-confirm'));
    });
    expect(api.requests.filter((r) => r.verb === 'failover').map((r) => r.args)).toEqual([{ pair: 'field' }]);
    expect(screen.getByTestId('failover-result').textContent).toBe(
      'Failed over: /d/b.img is the primary (generation 3); /d/a.img was unreachable. ' +
        'Consistency group db failed over with it: the secondaries of field, logs and index were promoted, all holding the same instant of the group, ' +
        'after the group’s cycle was applied from its seal on logs (cycle 7).',
    );
    expect(changed).toBe(1);
  });

  it('the result of a group failover with no cycle to roll forward, and of an ungrouped one', () => {
    const ungrouped: FailoverDto = {
      pair: 'field',
      newPrimary: '/d/b.img',
      oldPrimary: '/d/a.img',
      generation: 2,
      oldPrimaryReachable: true,
      atRiskRegions: 4,
      rolledBackRegions: 0,
      group: null,
      durationMs: 10,
    };
    expect(failoverResult(ungrouped)).toBe(
      'Failed over: /d/b.img is the primary (generation 2); /d/a.img was demoted, its 4 unshipped regions kept for failback.',
    );
    expect(failoverResult({ ...ungrouped, group: { name: 'db', pairs: ['field', 'logs'], rolledForward: [], abandonedCycle: false } })).toBe(
      'Failed over: /d/b.img is the primary (generation 2); /d/a.img was demoted, its 4 unshipped regions kept for failback. ' +
        'Consistency group db failed over with it: the secondaries of field and logs were promoted, all holding the same instant of the group.',
    );
    expect(failoverResult({ ...ungrouped, group: { name: 'db', pairs: ['field', 'logs'], rolledForward: [], abandonedCycle: true } })).toMatch(
      /all holding the same instant of the group \(its last cycle: the cycle in progress, applied nowhere yet, was left\)\.$/,
    );
    // Promoted by an earlier, interrupted group failover: the count of unshipped regions is not known here.
    expect(failoverResult({ ...ungrouped, atRiskRegions: null })).toBe(
      'Failed over: /d/b.img is the primary (generation 2); /d/a.img was demoted, its unshipped regions kept for failback.',
    );
  });

  it('failed over: the card says Fail back brings back this pair only, and what brings the group to one instant again', async () => {
    window.tidemark = new RecordingApi({
      roleOptions: () => options({ mode: 'periodic', generation: 3, failover: { atMs: 1, forced: true, phase: 'promoted' }, secondary: unreachable, group }),
    });
    render(<FailoverPanel pair={periodic} onChanged={() => undefined} />);
    await waitFor(() => screen.getByTestId('failback-group-note'));
    expect(screen.getByTestId('failback-group-note').textContent).toBe(
      'field is in consistency group db: Fail back here brings back this pair only. Afterwards run tidemark failback db ' +
        '(it fails back the group’s pairs still failed over, then runs one group cycle) or Run one group cycle in the Replication panel ' +
        '(or tidemark replicate db --once) once every pair of the group is back, so that the group’s secondaries hold one instant again.',
    );
    expect(disabled('failback-open')).toBe(false);
  });

  it('a reachable primary of a grouped pair: Migrate disabled (a grouped pair cannot migrate), the forced failover explained for the group', async () => {
    window.tidemark = new RecordingApi({ roleOptions: () => options({ mode: 'periodic', group }) });
    render(<FailoverPanel pair={periodic} onChanged={() => undefined} />);
    await waitFor(() =>
      expect(screen.getByTestId('role-options').textContent).toBe(
        '/d/a.img can be reached: Fail over (forced) demotes it and promotes every secondary of group db, all holding the same instant of the group (their unshipped writes go to failback); a pair in a consistency group cannot migrate.',
      ),
    );
    expect(disabled('migrate-open')).toBe(true);
    expect(disabled('failover-open')).toBe(false);
    fireEvent.click(screen.getByTestId('failover-open'));
    expect(screen.queryByTestId('failover-prefer-migrate')).toBeNull();
    expect(screen.getByTestId('failover-group')).toBeTruthy();
  });

  it('after a failback run here the note stays: the group is at one instant again only after its cycle; not after a failed failback', async () => {
    const failbackTask = (error: RoleTaskDto['error']) => task({ kind: 'failback', running: false, error });
    window.tidemark = new RecordingApi({ roleOptions: () => ({ ...options({ mode: 'periodic', generation: 3, group }), task: failbackTask(null) }) });
    render(<FailoverPanel pair={periodic} onChanged={() => undefined} />);
    await waitFor(() => screen.getByTestId('failback-group-note'));
    expect(screen.getByTestId('failback-group-note').textContent).toMatch(
      /tidemark failback db .* Run one group cycle in the Replication panel \(or tidemark replicate db --once\)/,
    );
    cleanup();
    const failed = { code: 'DISCONNECTED', message: 'link dropped', hint: 'retry' } as unknown as RoleTaskDto['error'];
    window.tidemark = new RecordingApi({ roleOptions: () => ({ ...options({ mode: 'periodic', generation: 3, group }), task: failbackTask(failed) }) });
    render(<FailoverPanel pair={periodic} onChanged={() => undefined} />);
    await waitFor(() => expect(screen.getByTestId('role-options').textContent).toMatch(/can be reached/));
    expect(screen.queryByTestId('failback-group-note')).toBeNull();
  });

  it('the note goes once the group has cycled after the failback: asked again when the Replication panel’s group cycle finishes (refreshKey)', async () => {
    const failedBack = task({ kind: 'failback', running: false, error: null, startedAtMs: 1_000 });
    let lastCycleAtMs: number | null = 500; // the group's last cycle was before the failback
    const api = new RecordingApi({
      roleOptions: () => ({ ...options({ mode: 'periodic', generation: 3, group: { ...group, lastCycleAtMs } }), task: failedBack }),
    });
    window.tidemark = api;
    const view = render(<FailoverPanel pair={periodic} onChanged={() => undefined} refreshKey={0} />);
    await waitFor(() => screen.getByTestId('failback-group-note'));
    lastCycleAtMs = 2_000; // a group cycle after it
    view.rerender(<FailoverPanel pair={periodic} onChanged={() => undefined} refreshKey={1} />);
    await waitFor(() => expect(screen.queryByTestId('failback-group-note')).toBeNull());
    expect(api.requests.filter((r) => r.verb === 'roleOptions')).toHaveLength(2);
  });
});

describe('RoleTaskProgress', () => {
  it('indeterminate before a total is known; the phase names what happens', () => {
    render(
      <RoleTaskProgress
        task={task({ progress: { phase: 'verify', regionsTransferred: 0, regionsTotal: 0, bytesTransferred: 0, bytesPerSecond: 0, etaMs: null } })}
      />,
    );
    expect(screen.getByTestId('role-task-line').textContent).toBe('Migrating: verifying both sides by signature, 0 B copied at 0 B/s, ETA unknown');
    expect(screen.getByRole('progressbar').getAttribute('aria-valuenow')).toBeNull();
  });

  it("Cancel: offered while the task may stop, disabled past a migrate's drain and while cancelling", () => {
    const copying = { phase: 'copy' as const, regionsTransferred: 64, regionsTotal: 160, bytesTransferred: 64 * MiB, bytesPerSecond: 32 * MiB, etaMs: 3000 };
    let cancels = 0;
    const { rerender } = render(<RoleTaskProgress task={task({ kind: 'failback', progress: copying, cancellable: true })} onCancel={() => cancels++} />);
    expect(disabled('role-task-cancel')).toBe(false);
    fireEvent.click(screen.getByTestId('role-task-cancel'));
    expect(cancels).toBe(1);
    rerender(<RoleTaskProgress task={task({ kind: 'failback', progress: copying, cancellable: true, cancelling: true })} onCancel={() => cancels++} />);
    expect(screen.getByTestId('role-task-line').textContent).toMatch(/^Failing back: cancelling — 64 of 160 regions/);
    expect(disabled('role-task-cancel')).toBe(true);
    rerender(<RoleTaskProgress task={task({ progress: { ...copying, phase: 'pause' }, cancellable: false })} onCancel={() => cancels++} />);
    expect(disabled('role-task-cancel')).toBe(true);
  });
});

describe('FailoverPanel Cancel', () => {
  it('asks roleTaskCancel for a running failback, then shows what the cancelled run kept', async () => {
    const copying = { phase: 'copy' as const, regionsTransferred: 64, regionsTotal: 160, bytesTransferred: 64 * MiB, bytesPerSecond: 32 * MiB, etaMs: 3000 };
    const running = task({ kind: 'failback', progress: copying, cancellable: true });
    const cancelled = task({
      kind: 'failback',
      running: false,
      progress: copying,
      error: {
        code: 'CANCELLED',
        message: 'failback of field cancelled after copying 64 of 160 regions: the old primary is demoted and the rest of the resync map is kept',
        hint: 'Fail back again (or run replication) to copy only what is left',
      },
    });
    let stopped = false;
    const api = new RecordingApi({
      roleOptions: () => options({ generation: 2, failover: { atMs: 1, forced: true, phase: 'seeded' }, task: stopped ? cancelled : running }),
      roleTaskCancel: () => {
        stopped = true;
        return { ...running, cancelling: true };
      },
      roleTask: () => (stopped ? cancelled : running),
    });
    window.tidemark = api;
    render(<FailoverPanel pair={pair} onChanged={() => undefined} />);
    await waitFor(() => expect(disabled('role-task-cancel')).toBe(false));
    await act(async () => {
      fireEvent.click(screen.getByTestId('role-task-cancel'));
    });
    expect(api.requests.find((r) => r.verb === 'roleTaskCancel')?.args).toEqual({ pair: 'field' });
    await waitFor(
      () => expect(screen.getByTestId('error-note').textContent).toMatch(/^failback of field cancelled after copying 64 of 160 regions.*Fail back again/),
      {
        timeout: 3000,
      },
    );
    expect(screen.queryByTestId('role-task-progress')).toBeNull();
    expect(disabled('failback-open')).toBe(false);
  });
});

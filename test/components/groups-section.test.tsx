// @vitest-environment happy-dom
// The Pairs screen's consistency groups in a DOM: the groups with their pairs (a missing one
// flagged), New group offering only periodic pairs in no group (and only when two are, and the
// records can be read), name checks, what Create group and the confirmed Delete group ask the
// engine, its refusals shown in place, a dialog that starts empty each time.
import { act, cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { GroupDto, OverviewDto, PairDto } from '../../src-main/console-api';
import { GroupsSection, groupablePairs } from '../../src-renderer/screens/GroupsSection';
import { RecordingApi } from './fake-api';

afterEach(cleanup);

function pair(name: string, mode: PairDto['mode']): PairDto {
  return {
    name,
    mode,
    primary: `/d/${name}-p.img`,
    secondary: `/d/${name}-s.img`,
    regionBytes: 2 ** 20,
    regions: 16,
    tracking: true,
    oosRegions: 0,
    moosRegions: 0,
    lagBytes: 0,
    writesTracked: 0,
    lastSync: null,
    sync: null,
  };
}

function overview(groups: GroupDto[], extra: Partial<OverviewDto> = {}): OverviewDto {
  const pairs = [pair('lab', 'continuous'), pair('db', 'periodic'), pair('logs', 'periodic'), pair('web', 'periodic'), pair('old', 'periodic')];
  return { homeDir: '/h', volumes: [], pairs, generator: null, groups, groupsError: null, ...extra };
}

const archive: GroupDto = { name: 'archive', pairs: ['old', 'web'], createdAt: '2026-11-25T05:00:00.000Z' };

const text = (testId: string) => screen.getByTestId(testId).textContent ?? '';

describe('GroupsSection', () => {
  it('offers only periodic pairs in no group', () => {
    expect(groupablePairs(overview([]))).toEqual(['db', 'logs', 'web', 'old']);
    expect(groupablePairs(overview([archive]))).toEqual(['db', 'logs']);
  });

  it('New group asks for a name and two pairs, then groupCreate; a group shows its pairs', async () => {
    const api = new RecordingApi({ groupCreate: () => overview([]) });
    window.tidemark = api;
    const changed = vi.fn();
    render(<GroupsSection overview={overview([archive])} onChanged={changed} />);
    expect(text('group-card-archive')).toMatch(/^archive.*old.*web.*Delete group…$/);
    fireEvent.click(screen.getByTestId('group-new'));
    const dialog = await screen.findByRole('dialog');
    // Only db and logs: old and web are in archive, lab is continuous.
    expect(within(dialog).queryByTestId('group-pick-web')).toBeNull();
    expect(within(dialog).queryByTestId('group-pick-lab')).toBeNull();
    const create = within(dialog).getByTestId('group-create') as HTMLButtonElement;
    expect(create.disabled).toBe(true);
    fireEvent.change(within(dialog).getByTestId('group-name'), { target: { value: 'bad name' } });
    expect(dialog.textContent).toContain('1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit');
    fireEvent.change(within(dialog).getByTestId('group-name'), { target: { value: ' orders ' } });
    fireEvent.click(within(dialog).getByTestId('group-pick-db').querySelector('input')!);
    expect(create.disabled).toBe(true); // one pair is not a group
    expect(dialog.textContent).toContain('Pick two or more pairs.');
    fireEvent.click(within(dialog).getByTestId('group-pick-logs').querySelector('input')!);
    expect(create.disabled).toBe(false);
    await act(async () => {
      fireEvent.click(create);
    });
    expect(api.requests).toEqual([{ verb: 'groupCreate', args: { name: 'orders', pairs: ['db', 'logs'] } }]);
    expect(changed).toHaveBeenCalled();
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
  });

  it('an engine refusal stays in the dialog, with its hint', async () => {
    const api = new RecordingApi({});
    api.request = (async () => {
      throw new Error('tidemark:{"code":"BUSY","message":"pair db is replicating in this console","hint":"stop its replication first"}');
    }) as RecordingApi['request'];
    window.tidemark = api;
    render(<GroupsSection overview={overview([])} onChanged={() => undefined} />);
    fireEvent.click(screen.getByTestId('group-new'));
    const dialog = await screen.findByRole('dialog');
    fireEvent.change(within(dialog).getByTestId('group-name'), { target: { value: 'orders' } });
    fireEvent.click(within(dialog).getByTestId('group-pick-db').querySelector('input')!);
    fireEvent.click(within(dialog).getByTestId('group-pick-logs').querySelector('input')!);
    await act(async () => {
      fireEvent.click(within(dialog).getByTestId('group-create'));
    });
    await waitFor(() => expect(within(dialog).getByTestId('error-note').textContent).toBe('pair db is replicating in this consolestop its replication first'));
  });

  it('Delete group says what ends and asks once before groupDelete; Cancel asks nothing; fewer than two groupable pairs disable New group', async () => {
    const api = new RecordingApi({ groupDelete: () => overview([]) });
    window.tidemark = api;
    const changed = vi.fn();
    const both: GroupDto = { name: 'orders', pairs: ['db', 'logs'], createdAt: archive.createdAt };
    render(<GroupsSection overview={overview([archive, both])} onChanged={changed} />);
    expect((screen.getByTestId('group-new') as HTMLButtonElement).disabled).toBe(true);
    fireEvent.click(screen.getByTestId('group-delete-orders'));
    let dialog = await screen.findByRole('dialog');
    expect(within(dialog).getByTestId('group-delete-consequences').textContent).toMatch(
      /^db, logs stay, with their volumes and cycles, and replicate on their own again: their secondaries no longer hold one instant together/,
    );
    fireEvent.click(within(dialog).getByText('Cancel'));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect(api.requests).toEqual([]);
    fireEvent.click(screen.getByTestId('group-delete-orders'));
    dialog = await screen.findByRole('dialog');
    await act(async () => {
      fireEvent.click(within(dialog).getByTestId('group-delete-confirm'));
    });
    expect(api.requests).toEqual([{ verb: 'groupDelete', args: { name: 'orders' } }]);
    expect(changed).toHaveBeenCalled();
  });

  it('the dialog starts empty each time it opens; a group naming a missing pair flags it', async () => {
    window.tidemark = new RecordingApi({});
    const orphan: GroupDto = { name: 'gone', pairs: ['web', 'deleted'], createdAt: archive.createdAt };
    render(<GroupsSection overview={overview([orphan])} onChanged={() => undefined} />);
    expect(text('group-card-gone')).toContain('deleted (missing)');
    fireEvent.click(screen.getByTestId('group-new'));
    let dialog = await screen.findByRole('dialog');
    fireEvent.change(within(dialog).getByTestId('group-name'), { target: { value: 'orders' } });
    fireEvent.click(within(dialog).getByTestId('group-pick-db').querySelector('input')!);
    fireEvent.click(within(dialog).getByText('Cancel'));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    fireEvent.click(screen.getByTestId('group-new'));
    dialog = await screen.findByRole('dialog');
    expect((within(dialog).getByTestId('group-name') as HTMLInputElement).value).toBe('');
    expect((within(dialog).getByTestId('group-pick-db').querySelector('input') as HTMLInputElement).checked).toBe(false);
  });

  it('no groups: the empty note; a damaged group record is named instead, and blocks New group', () => {
    window.tidemark = new RecordingApi({});
    const view = render(<GroupsSection overview={overview([])} onChanged={() => undefined} />);
    expect(text('groups-empty')).toMatch(/^No groups\. A consistency group snapshots the primaries of its periodic pairs at one instant/);
    view.unmount();
    render(
      <GroupsSection
        overview={overview([], { groupsError: { code: 'METADATA_CORRUPT', message: 'groups/db.json is damaged', hint: 'restore it' } })}
        onChanged={() => undefined}
      />,
    );
    expect(text('error-note')).toBe('groups/db.json is damagedrestore it');
    expect(screen.queryByTestId('groups-empty')).toBeNull(); // not "no groups": one cannot be read
    // Which pairs are grouped is not known: no New group until the record is mended.
    expect((screen.getByTestId('group-new') as HTMLButtonElement).disabled).toBe(true);
  });
});

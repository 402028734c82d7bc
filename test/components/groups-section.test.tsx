// @vitest-environment happy-dom
// The Pairs screen's consistency groups in a DOM: the groups with their pairs, New group offering
// only periodic pairs in no group (and only when two are), what Create group and Delete group ask
// the engine, its refusals shown in place, and a damaged group record named.
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
    expect(text('group-archive')).toMatch(/^archive.*old.*web.*Delete group$/);
    fireEvent.click(screen.getByTestId('group-new'));
    const dialog = await screen.findByRole('dialog');
    // Only db and logs: old and web are in archive, lab is continuous.
    expect(within(dialog).queryByTestId('group-pick-web')).toBeNull();
    expect(within(dialog).queryByTestId('group-pick-lab')).toBeNull();
    const create = within(dialog).getByTestId('group-create') as HTMLButtonElement;
    expect(create.disabled).toBe(true);
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

  it('Delete group asks groupDelete; fewer than two groupable pairs disable New group', async () => {
    const api = new RecordingApi({ groupDelete: () => overview([]) });
    window.tidemark = api;
    const both: GroupDto = { name: 'orders', pairs: ['db', 'logs'], createdAt: archive.createdAt };
    render(<GroupsSection overview={overview([archive, both])} onChanged={() => undefined} />);
    expect((screen.getByTestId('group-new') as HTMLButtonElement).disabled).toBe(true);
    await act(async () => {
      fireEvent.click(screen.getByTestId('group-delete-orders'));
    });
    expect(api.requests).toEqual([{ verb: 'groupDelete', args: { name: 'orders' } }]);
  });

  it('no groups: the empty note; a damaged group record is named', () => {
    window.tidemark = new RecordingApi({});
    render(
      <GroupsSection
        overview={overview([], { groupsError: { code: 'METADATA_CORRUPT', message: 'groups/db.json is damaged', hint: 'restore it' } })}
        onChanged={() => undefined}
      />,
    );
    expect(text('groups-empty')).toMatch(/^No groups\. A consistency group snapshots the primaries of its periodic pairs at one instant/);
    expect(text('error-note')).toBe('groups/db.json is damagedrestore it');
  });
});

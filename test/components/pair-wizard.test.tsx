// @vitest-environment happy-dom
// The pair wizard in a DOM: each side picks a host (this machine or one of the Hosts screen) and a
// volume that host's agent has registered, or a path typed on it; the volref it sends is the path
// here or `host:/path`, in both the estimate and pairCreate.
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import type { HostDto, HostVolumesDto, OverviewDto, SyncEstimateDto } from '../../src-main/console-api';
import { isOnHost, parseVolRef, volrefOnHost } from '../../src-engine/agent';
import { PairWizard, sideVolref } from '../../src-renderer/screens/PairWizard';
import { RecordingApi } from './fake-api';

afterEach(cleanup);

const MiB = 2 ** 20;

function host(name: string, state: HostDto['state']): HostDto {
  return {
    name,
    target: `root@${name}:22`,
    state,
    lastError: null,
    nodeVersion: 'v20.20.0',
    agentVersion: '0.1.0',
    homeDir: '/root/.local/share/tidemark',
    homeFreeBytes: 2 ** 30,
    connections: state === 'connected' ? 1 : 0,
    question: null,
    addedAtMs: 0,
  };
}

const volumes: Record<string, HostVolumesDto> = {
  here: {
    host: null,
    volumes: [
      { path: '/d/a.img', volref: '/d/a.img', sizeBytes: 64 * MiB, regionBytes: MiB, pair: null },
      { path: '/d/lab.img', volref: '/d/lab.img', sizeBytes: 64 * MiB, regionBytes: MiB, pair: 'lab' },
    ],
  },
  'host-b': {
    host: 'host-b',
    volumes: [
      { path: '/srv/b.img', volref: 'host-b:/srv/b.img', sizeBytes: 128 * MiB, regionBytes: MiB, pair: null },
      { path: '/srv/used.img', volref: 'host-b:/srv/used.img', sizeBytes: 64 * MiB, regionBytes: MiB, pair: 'other' },
    ],
  },
};

const estimate: SyncEstimateDto = {
  regions: 64,
  regionBytes: MiB,
  primaryRealized: 10,
  secondaryRealized: 0,
  methods: [{ method: 'tardy', bytesUpTo: 10 * MiB, regionsUpTo: 10, signatureBytes: 0, regionsReclaimed: 0, note: 'copy, then a short snapshot' }],
};

const overview: OverviewDto = { homeDir: '/h', volumes: [], pairs: [], generator: null, groups: [], groupsError: null };

function install(): RecordingApi {
  const api = new RecordingApi({
    hosts: () => ({ hosts: [host('host-b', 'connected'), host('dr', 'disconnected')], candidates: [] }),
    hostVolumes: ({ host: name }) => volumes[name ?? 'here']!,
    pairEstimate: () => estimate,
    pairCreate: () => overview,
    syncStart: ({ pair, method }) => ({ pair, method, running: true, startedAtMs: 0, progress: null, summary: null, error: null }),
  });
  window.tidemark = api;
  return api;
}

async function choose(picker: string, label: RegExp, option: RegExp) {
  const box = () => within(screen.getByTestId(picker)).getByRole('combobox', { name: label });
  await waitFor(() => expect(box().getAttribute('aria-disabled')).not.toBe('true'));
  fireEvent.mouseDown(box());
  fireEvent.click(await screen.findByRole('option', { name: option }));
}

/**
 * The wizard left its first step and Next is enabled again: Next stays disabled while the step
 * change runs, and a click on it then is lost (a loaded CI run once timed out so).
 */
async function nextStepReady(): Promise<void> {
  await waitFor(() => {
    expect(screen.queryByTestId('wizard-primary')).toBeNull();
    expect((screen.getByTestId('wizard-next') as HTMLButtonElement).disabled).toBe(false);
  });
}

describe('PairWizard', () => {
  it('a volume of this machine as primary and one of host-b as secondary: pairCreate gets host-b:/path', async () => {
    const api = install();
    const created: string[] = [];
    render(<PairWizard open onClose={() => undefined} onCreated={(name) => created.push(name)} />);
    fireEvent.change(screen.getByTestId('wizard-name'), { target: { value: 'field' } });
    // This machine's volumes; one already in a pair cannot be chosen.
    const volumesHere = () => within(screen.getByTestId('wizard-primary-picker')).getByRole('combobox', { name: /^Volumes on this machine/ });
    await waitFor(() => expect(volumesHere().getAttribute('aria-disabled')).not.toBe('true'));
    fireEvent.mouseDown(volumesHere());
    expect((await screen.findByRole('option', { name: /\/d\/lab\.img · 64 MiB · in pair lab/ })).getAttribute('aria-disabled')).toBe('true');
    fireEvent.click(screen.getByRole('option', { name: /^\/d\/a\.img · 64 MiB$/ }));
    expect((screen.getByTestId('wizard-primary') as HTMLInputElement).value).toBe('/d/a.img');

    // The hosts of the Hosts screen are offered, with their state.
    fireEvent.mouseDown(within(screen.getByTestId('wizard-secondary-picker')).getByRole('combobox', { name: 'Host' }));
    expect((await screen.findAllByRole('option')).map((o) => o.textContent)).toEqual(['this machine', 'host-b', 'dr (disconnected)']);
    fireEvent.click(screen.getByRole('option', { name: 'host-b' }));
    await waitFor(() => expect(api.requests).toContainEqual({ verb: 'hostVolumes', args: { host: 'host-b' } }));
    await choose('wizard-secondary-picker', /^Volumes on host-b/, /^\/srv\/b\.img · 128 MiB$/);
    expect((screen.getByTestId('wizard-secondary') as HTMLInputElement).value).toBe('/srv/b.img');
    expect(screen.getByTestId('wizard-secondary-picker').textContent).toContain('the pair uses host-b:/srv/b.img');

    fireEvent.click(screen.getByTestId('wizard-next'));
    await nextStepReady();
    fireEvent.click(screen.getByTestId('wizard-next'));
    await screen.findByTestId('wizard-estimates');
    expect(api.requests.find((r) => r.verb === 'pairEstimate')?.args).toEqual({ primary: '/d/a.img', secondary: 'host-b:/srv/b.img', regionBytes: MiB });
    fireEvent.click(screen.getByTestId('wizard-create'));
    await waitFor(() => expect(created).toEqual(['field']));
    expect(api.requests.find((r) => r.verb === 'pairCreate')?.args).toEqual({
      name: 'field',
      primary: '/d/a.img',
      secondary: 'host-b:/srv/b.img',
      regionBytes: MiB,
      mode: 'continuous',
      hash: 'xxh3-128',
    });
  });

  it('a host not connected: says how to list its volumes, never asks for them, and a path typed on it becomes dr:/path', async () => {
    const api = install();
    render(<PairWizard open onClose={() => undefined} onCreated={() => undefined} />);
    await waitFor(() => expect(api.requests.some((r) => r.verb === 'hosts')).toBe(true));
    await choose('wizard-primary-picker', /^Host$/, /^dr \(disconnected\)$/);
    expect(screen.getByTestId('wizard-primary-picker').textContent).toContain('dr is disconnected: connect it on the Hosts screen to list its volumes');
    expect(api.requests.filter((r) => r.verb === 'hostVolumes').map((r) => r.args)).not.toContainEqual({ host: 'dr' });
    fireEvent.change(screen.getByTestId('wizard-primary'), { target: { value: '/srv/dr.img' } });
    // Typing a whole volref on this machine still works.
    fireEvent.change(screen.getByTestId('wizard-secondary'), { target: { value: 'host-b:/srv/typed.img' } });
    fireEvent.change(screen.getByTestId('wizard-name'), { target: { value: 'typed' } });
    fireEvent.click(screen.getByTestId('wizard-next'));
    await nextStepReady();
    fireEvent.click(screen.getByTestId('wizard-next'));
    await screen.findByTestId('wizard-estimates');
    expect(api.requests.find((r) => r.verb === 'pairEstimate')?.args).toEqual({
      primary: 'dr:/srv/dr.img',
      secondary: 'host-b:/srv/typed.img',
      regionBytes: MiB,
    });
  });

  it('sideVolref: a path here as is, host:/path on a host, nothing for an empty path', () => {
    expect(sideVolref('', ' /d/a.img ')).toBe('/d/a.img');
    expect(sideVolref('', 'host-b:/x')).toBe('host-b:/x');
    expect(sideVolref('host-b', '/srv/b.img')).toBe('host-b:/srv/b.img');
    expect(sideVolref('host-b', '  ')).toBe('');
    expect(sideVolref('admin@10.0.0.9:2222', '/srv/b.img')).toBe('ssh://admin@10.0.0.9:2222/srv/b.img');
  });

  it("sideVolref names the same volume as the engine's volrefOnHost for every form of host name", () => {
    const names = ['host-b', 'eng@host-b', 'ssh://host-b', 'host-b:2222', 'eng@host-b:2222', 'ssh://eng@10.0.0.9:2222/', '[::1]', '[::1]:22', 'eng@[::1]:2222'];
    for (const name of names) {
      for (const path of ['/srv/b.img', '/mnt/seed disk/50%.img']) {
        const fromWizard = parseVolRef(sideVolref(name, path));
        expect(fromWizard, `${name} ${path}`).toEqual(parseVolRef(volrefOnHost(name, path)));
        expect(fromWizard).toMatchObject({ kind: 'ssh', path });
        expect(isOnHost(fromWizard, name, true)).toBe(true);
      }
    }
  });
});

// @vitest-environment happy-dom
// The Hosts screen in a DOM: the host list with state and versions, the host-key question with
// the full fingerprint, the secret question (never echoed; "remember" only with a keychain),
// adding and removing hosts — and what each asks the engine to do.
import { act, cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import type { HostDto, HostsDto } from '../../src-main/console-api';
import { HostsScreen } from '../../src-renderer/screens/HostsScreen';
import { RecordingApi } from './fake-api';

afterEach(cleanup);

const fingerprint = 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s';

function host(extra: Partial<HostDto>): HostDto {
  return {
    name: 'backup-site',
    target: 'root@10.0.0.7:22',
    state: 'connected',
    lastError: null,
    nodeVersion: 'v20.20.0',
    agentVersion: '0.1.0',
    homeDir: '/root/.local/share/tidemark',
    homeFreeBytes: 512 * 2 ** 30,
    connections: 1,
    question: null,
    addedAtMs: 0,
    ...extra,
  };
}

function install(hosts: HostDto[], candidates: string[] = []): RecordingApi {
  const list = (): HostsDto => ({ hosts, candidates });
  const api = new RecordingApi({
    hosts: list,
    hostAdd: ({ name }) => host({ name, state: 'connecting' }),
    hostAnswer: ({ name }) => host({ name }),
    hostRemove: () => list(),
    hostConnect: ({ name }) => host({ name }),
  });
  window.tidemark = api;
  return api;
}

describe('HostsScreen', () => {
  it('lists hosts with state, Node and agent versions and free space, and the error of a failed one', async () => {
    install([
      host({}),
      host({
        name: 'dr',
        target: null,
        state: 'failed',
        nodeVersion: null,
        agentVersion: null,
        homeFreeBytes: null,
        lastError: { code: 'UNSUPPORTED', message: 'host dr has no Node.js', hint: 'install Node.js 20 or newer on dr' },
      }),
    ]);
    render(<HostsScreen />);
    await waitFor(() => expect(screen.getAllByTestId('host-row')).toHaveLength(2));
    const [ok, failed] = screen.getAllByTestId('host-row');
    expect(ok!.textContent).toContain('root@10.0.0.7:22');
    expect(ok!.textContent).toContain('v20.20.0');
    expect(ok!.textContent).toContain('512 GiB');
    expect(failed!.textContent).toContain('failed');
    expect(screen.getByTestId('host-error').textContent).toBe('host dr has no Node.js — install Node.js 20 or newer on dr');
  });

  it('shows an unknown host key in full and sends the approval', async () => {
    const api = install([host({ state: 'connecting', question: { id: 7, kind: 'host-key', hostPort: '10.0.0.7:22', fingerprint } })]);
    render(<HostsScreen />);
    await waitFor(() => expect(screen.getByTestId('fingerprint').textContent).toBe(fingerprint));
    await act(async () => {
      fireEvent.click(screen.getByTestId('approve-host-key'));
    });
    expect(api.requests.filter((r) => r.verb === 'hostAnswer')).toEqual([{ verb: 'hostAnswer', args: { name: 'backup-site', questionId: 7, approve: true } }]);
  });

  it('asks a passphrase without echo; "remember" needs a keychain', async () => {
    const question = {
      id: 3,
      kind: 'passphrase' as const,
      prompt: 'Passphrase for /root/.ssh/id_ed25519',
      echo: false,
      keyFile: '/root/.ssh/id_ed25519',
      keychain: null,
    };
    const api = install([host({ state: 'connecting', question })]);
    render(<HostsScreen />);
    const input = (await screen.findByTestId('secret')) as HTMLInputElement;
    expect(input.type).toBe('password');
    expect((screen.getByRole('checkbox') as HTMLInputElement).disabled).toBe(true);
    expect(screen.getByText(/no OS keychain available/)).toBeTruthy();
    fireEvent.change(input, { target: { value: 'sea salt' } });
    await act(async () => {
      fireEvent.click(screen.getByTestId('submit-secret'));
    });
    expect(api.requests.filter((r) => r.verb === 'hostAnswer')).toEqual([
      { verb: 'hostAnswer', args: { name: 'backup-site', questionId: 3, secret: 'sea salt', remember: false } },
    ]);
  });

  it('offers the keychain when there is one', async () => {
    const question = { id: 4, kind: 'password' as const, prompt: 'Password for root@10.0.0.7:22', echo: false, keyFile: null, keychain: 'gnome_libsecret' };
    install([host({ state: 'connecting', question })]);
    render(<HostsScreen />);
    await screen.findByTestId('secret');
    expect((screen.getByRole('checkbox') as HTMLInputElement).disabled).toBe(false);
    expect(screen.getByText(/Remember it in the OS keychain \(gnome_libsecret\)/)).toBeTruthy();
  });

  it('adds a host by address and removes one after confirmation', async () => {
    const api = install([host({})], ['bastion']);
    render(<HostsScreen />);
    await screen.findAllByTestId('host-row');
    fireEvent.change(screen.getByTestId('host-name'), { target: { value: 'admin@10.0.0.9:2222' } });
    await act(async () => {
      fireEvent.click(screen.getByTestId('add-host'));
    });
    expect(api.requests.filter((r) => r.verb === 'hostAdd')).toEqual([{ verb: 'hostAdd', args: { name: 'admin@10.0.0.9:2222' } }]);
    fireEvent.click(screen.getByTestId('remove-host'));
    await act(async () => {
      fireEvent.click(await screen.findByTestId('confirm-remove-host'));
    });
    expect(api.requests.filter((r) => r.verb === 'hostRemove')).toEqual([{ verb: 'hostRemove', args: { name: 'backup-site' } }]);
  });

  it('says what to do when no host is added', async () => {
    install([]);
    render(<HostsScreen />);
    await waitFor(() => expect(screen.getByText('No remote hosts yet')).toBeTruthy());
  });
});

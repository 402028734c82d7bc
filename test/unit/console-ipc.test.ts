// Console API refusals on the Electron side: unknown channels, foreign senders and bad
// arguments never reach the engine. Uses a recording ipcMain (no Electron binary needed).
import { describe, expect, it, vi } from 'vitest';
import { consoleVerbs, validateRequest, ConsoleRefusal } from '../../src-main/console-schema';
import type { ConsoleService } from '../../src-main/console-service';
import { pickDirectoryChannel, registerDirectoryPicker, registerIpc, senderRefusal, type InvokeEventLike, type IpcMainLike } from '../../src-main/ipc';

function recordingIpc() {
  const handlers = new Map<string, (event: InvokeEventLike, ...args: unknown[]) => Promise<unknown>>();
  const ipc: IpcMainLike = { handle: (channel, listener) => handlers.set(channel, listener), removeHandler: (channel) => handlers.delete(channel) };
  return { ipc, handlers };
}

const ownFrame: InvokeEventLike = { senderFrame: { url: 'app://tidemark/index.html', parent: null }, sender: { id: 1 } };

function fakeService() {
  const handle = vi.fn(async (verb: unknown, args: unknown) => ({ ok: true as const, result: { verb, args } }));
  return { service: { handle } as unknown as ConsoleService, handle };
}

describe('console schema', () => {
  it('accepts each verb with valid arguments', () => {
    expect(validateRequest('overview', {})).toEqual({ verb: 'overview', args: {} });
    expect(validateRequest('bitmap', { pair: 'lab', which: 'moos' }).args).toEqual({ pair: 'lab', which: 'moos' });
    expect(validateRequest('generatorStart', { pattern: 'hot-spot', writesPerSecond: 10, writeBytes: 4096, seed: 3 }).verb).toBe('generatorStart');
    expect(validateRequest('replicationStart', { pair: 'lab', limitRateBytesPerSecond: 1048576 }).args).toEqual({
      pair: 'lab',
      limitRateBytesPerSecond: 1048576,
    });
    expect(validateRequest('replicationStart', { pair: 'lab' }).args).toEqual({ pair: 'lab' });
    expect(validateRequest('replicationStop', { pair: 'lab' }).verb).toBe('replicationStop');
    expect(validateRequest('replicationState', { pair: 'lab' }).verb).toBe('replicationState');
  });

  it.each([
    ['unknown verb', 'deleteEverything', {}, 'UNKNOWN_VERB'],
    ['prototype key as verb', '__proto__', {}, 'UNKNOWN_VERB'],
    ['non-string verb', 42, {}, 'UNKNOWN_VERB'],
    ['extra key', 'overview', { sneaky: 1 }, 'BAD_ARGUMENTS'],
    ['wrong type', 'bitmap', { pair: 'lab', which: 'everything' }, 'BAD_ARGUMENTS'],
    ['missing field', 'events', {}, 'BAD_ARGUMENTS'],
    ['out of range', 'generatorStart', { pattern: 'random', writesPerSecond: 1e9, writeBytes: 4096, seed: 1 }, 'BAD_ARGUMENTS'],
    ['negative id', 'events', { afterId: -1 }, 'BAD_ARGUMENTS'],
    ['array instead of object', 'overview', [], 'BAD_ARGUMENTS'],
    ['zero rate limit', 'replicationStart', { pair: 'lab', limitRateBytesPerSecond: 0 }, 'BAD_ARGUMENTS'],
    ['fractional rate limit', 'replicationStart', { pair: 'lab', limitRateBytesPerSecond: 1.5 }, 'BAD_ARGUMENTS'],
    ['replication of no pair', 'replicationState', { pair: '' }, 'BAD_ARGUMENTS'],
    ['stop with an extra key', 'replicationStop', { pair: 'lab', force: true }, 'BAD_ARGUMENTS'],
  ])('refuses %s', (_name, verb, args, code) => {
    expect(() => validateRequest(verb, args)).toThrow(expect.objectContaining({ code }));
    expect(() => validateRequest(verb, args)).toThrow(ConsoleRefusal);
  });
});

describe('IPC handlers', () => {
  it('registers exactly one tidemark:-prefixed channel per verb and removes them', () => {
    const { ipc, handlers } = recordingIpc();
    const unregister = registerIpc(
      ipc,
      fakeService().service,
      () => 1,
      () => undefined,
    );
    expect([...handlers.keys()].sort()).toEqual(consoleVerbs.map((v) => `tidemark:${v}`).sort());
    unregister();
    expect(handlers.size).toBe(0);
  });

  it('a channel outside the verb list has no handler', () => {
    const { ipc, handlers } = recordingIpc();
    registerIpc(
      ipc,
      fakeService().service,
      () => 1,
      () => undefined,
    );
    expect(handlers.get('tidemark:shell')).toBeUndefined();
    expect(handlers.get('overview')).toBeUndefined();
  });

  it.each([
    ['a foreign origin', { senderFrame: { url: 'https://evil.example/x', parent: null }, sender: { id: 1 } }, /origin https:\/\/evil.example/],
    ['file://', { senderFrame: { url: 'file:///tmp/index.html', parent: null }, sender: { id: 1 } }, /origin file:/],
    ['a subframe', { senderFrame: { url: 'app://tidemark/index.html', parent: {} }, sender: { id: 1 } }, /subframe/],
    ['a destroyed frame', { senderFrame: null, sender: { id: 1 } }, /frame is gone/],
    ['another window', { senderFrame: { url: 'app://tidemark/index.html', parent: null }, sender: { id: 2 } }, /another window/],
  ])('refuses %s before the engine sees the request', async (_name, event, reason) => {
    const { ipc, handlers } = recordingIpc();
    const { service, handle } = fakeService();
    const log: string[] = [];
    registerIpc(
      ipc,
      service,
      () => 1,
      (line) => log.push(line),
    );
    const outcome = (await handlers.get('tidemark:overview')!(event as InvokeEventLike, {})) as { ok: boolean; error: { code: string; message: string } };
    expect(outcome.ok).toBe(false);
    expect(outcome.error.code).toBe('FORBIDDEN');
    expect(outcome.error.message).toMatch(reason);
    expect(handle).not.toHaveBeenCalled();
    expect(log[0]).toMatch(/^ipc: refused overview/);
  });

  it('after the window closed, even an app:// frame is refused', async () => {
    const { ipc, handlers } = recordingIpc();
    const { service, handle } = fakeService();
    registerIpc(
      ipc,
      service,
      () => undefined, // the window is gone
      () => undefined,
    );
    const outcome = (await handlers.get('tidemark:overview')!(ownFrame, {})) as { ok: boolean; error: { message: string } };
    expect(outcome).toMatchObject({ ok: false, error: { message: expect.stringMatching(/no Tidemark window is open/) } });
    expect(handle).not.toHaveBeenCalled();
  });

  it('passes our own frame through to validation, and refuses extra arguments', async () => {
    const { ipc, handlers } = recordingIpc();
    const { service, handle } = fakeService();
    registerIpc(
      ipc,
      service,
      () => 1,
      () => undefined,
    );
    await handlers.get('tidemark:bitmap')!(ownFrame, { pair: 'lab', which: 'oos' });
    expect(handle).toHaveBeenCalledWith('bitmap', { pair: 'lab', which: 'oos' });
    const outcome = (await handlers.get('tidemark:bitmap')!(ownFrame, { pair: 'lab', which: 'oos' }, 'extra')) as { ok: boolean; error: { code: string } };
    expect(outcome).toMatchObject({ ok: false, error: { code: 'BAD_ARGUMENTS' } });
    expect(handle).toHaveBeenCalledTimes(1);
  });

  it('senderRefusal accepts only app://tidemark top frames', () => {
    expect(senderRefusal(ownFrame, 1)).toBeNull();
    expect(senderRefusal({ ...ownFrame, senderFrame: { url: 'app://tidemark.evil/index.html', parent: null } }, 1)).toMatch(/not app:\/\/tidemark/);
  });
});

describe('the native directory chooser (Electron only)', () => {
  function install(pick: (options: unknown) => Promise<string | null>, trusted: () => number | undefined = () => 1) {
    const { ipc, handlers } = recordingIpc();
    const picked = vi.fn(pick);
    const unregister = registerDirectoryPicker(ipc, picked, trusted, () => undefined);
    return { call: (event: InvokeEventLike, ...args: unknown[]) => handlers.get(pickDirectoryChannel)!(event, ...args), picked, unregister, handlers };
  }

  it('opens the chooser for our own window with the validated options and returns the directory, or null when cancelled', async () => {
    const chosen = install(async () => '/media/usb/seed');
    expect(pickDirectoryChannel).toBe('tidemark:pickDirectory');
    expect(await chosen.call(ownFrame, { title: 'Export into', defaultPath: '/media' })).toEqual({ ok: true, result: '/media/usb/seed' });
    expect(chosen.picked).toHaveBeenCalledWith({ title: 'Export into', defaultPath: '/media' });
    const cancelled = install(async () => null);
    expect(await cancelled.call(ownFrame, { title: 'Import from' })).toEqual({ ok: true, result: null });
    chosen.unregister();
    expect(chosen.handlers.size).toBe(0);
  });

  it('refuses another sender, bad or extra arguments before any dialog opens; a failing dialog is an error, not a crash', async () => {
    const { call, picked } = install(async () => '/x');
    const foreign = { senderFrame: { url: 'https://evil.example/', parent: null }, sender: { id: 1 } };
    expect(await call(foreign, { title: 'x' })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await call(ownFrame, { title: 'x', sneaky: 1 })).toMatchObject({ ok: false, error: { code: 'BAD_ARGUMENTS' } });
    expect(await call(ownFrame, { title: '' })).toMatchObject({ ok: false, error: { code: 'BAD_ARGUMENTS' } });
    expect(await call(ownFrame, { title: 'x' }, 'extra')).toMatchObject({ ok: false, error: { code: 'BAD_ARGUMENTS' } });
    expect(await call(ownFrame, { title: 'x', defaultPath: 'a\0b' })).toMatchObject({ ok: false, error: { code: 'BAD_ARGUMENTS' } });
    expect(picked).not.toHaveBeenCalled();
    const closed = install(
      async () => '/x',
      () => undefined, // the window is gone
    );
    expect(await closed.call(ownFrame, { title: 'x' })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    const broken = install(async () => Promise.reject(new Error('no display')));
    expect(await broken.call(ownFrame, { title: 'x' })).toMatchObject({ ok: false, error: { code: 'INTERNAL', message: expect.stringMatching(/no display/) } });
  });

  it('is not a console verb (web mode has no native dialog)', () => {
    expect(consoleVerbs).not.toContain('pickDirectory');
    expect(validateRequest('hostVolumes', {}).args).toEqual({});
    expect(validateRequest('hostVolumes', { host: 'backup-site' }).args).toEqual({ host: 'backup-site' });
    expect(() => validateRequest('hostVolumes', { host: 'a b' })).toThrow(ConsoleRefusal);
  });
});

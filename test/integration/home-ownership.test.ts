// A CLI command on a home no agent daemon serves owns the home while it runs (its in-process
// agent serves agent.sock): later commands go through it, it lets go only once they are done,
// and long work waits for a quick command's ownership to end rather than depend on it
// (docs/home-layout.md).
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalAgent, RpcAgent, awaitShortLivedOwner, homeOwner } from '../../src-engine/agent';
import { openHomeAgent } from '../../src-engine/cli/agents';
import { tempDir } from '../helpers/tmp';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function freshHome(): Promise<string> {
  const home = join(await tempDir(), 'home');
  await mkdir(home);
  return home;
}

describe('home ownership by CLI commands', () => {
  it('the first command owns the home; a later one goes through it, and the owner waits for it before letting go', async () => {
    const home = await freshHome();
    const notices: string[] = [];
    const owner = await openHomeAgent(home, 'long', (line) => notices.push(line));
    expect(owner.agent).toBeInstanceOf(LocalAgent);
    expect(await homeOwner(home)).toMatchObject({ pid: process.pid, purpose: 'tidemark CLI' });
    expect((await homeOwner(home))?.shortLived).toBeUndefined();
    const later = await openHomeAgent(home, 'short', () => undefined);
    expect(later.agent).toBeInstanceOf(RpcAgent);
    const volume = join(home, '..', 'v.img');
    await later.agent.volumeCreate(volume, 4 * 2 ** 20, 2 ** 20);
    expect((await owner.agent.volumeList()).map((v) => v.path)).toContain(volume);

    let released = false;
    const releasing = owner.release().then(() => (released = true));
    await sleep(300);
    expect(released).toBe(false);
    expect(notices).toEqual(['1 other tidemark command(s) on this home go through this process: waiting for them to finish (Ctrl-C stops them)']);
    await later.release();
    await releasing;
    expect(await homeOwner(home)).toBeUndefined();
  });

  it('long work waits for a quick command that owns the home to go, then owns it; it does not wait for a long owner', async () => {
    const home = await freshHome();
    const quick = await openHomeAgent(home, 'short', () => undefined);
    expect((await homeOwner(home))?.shortLived).toBe(true);
    let waited = false;
    const waiting = awaitShortLivedOwner(home).then(() => (waited = true));
    await sleep(400);
    expect(waited).toBe(false);
    await quick.release();
    await waiting;

    const long = await openHomeAgent(home, 'long', () => undefined);
    expect(long.agent).toBeInstanceOf(LocalAgent);
    await awaitShortLivedOwner(home); // a long owner: no wait (the test would time out)
    const beside = await openHomeAgent(home, 'long', () => undefined);
    expect(beside.agent).toBeInstanceOf(RpcAgent);
    await beside.release();
    await long.release();
  });
});

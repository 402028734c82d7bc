// The Hosts screen end to end: Debian's Chromium, the console in web mode as a real process,
// and a real OpenSSH sshd on loopback. The host is picked from ~/.ssh/config, its full SHA256
// fingerprint is shown (checked against ssh-keygen) and approved, and the row shows the
// connected agent's Node version, agent version and free space. Screenshots in test-results/.
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopAgentOf } from '../helpers/agents';
import { launchChromium, openConsolePage, startWebConsole, type WebConsole } from '../helpers/browser';
import { repoRoot } from '../helpers/cli';
import { startSshd, type TestSshd } from '../helpers/sshd';

const shots = join(repoRoot, 'test-results');
let browser: Browser;
let web: WebConsole;
let sshd: TestSshd;
let dir: string;

beforeAll(async () => {
  await mkdir(shots, { recursive: true });
  dir = await mkdtemp(join(tmpdir(), 'tm-e2e-hosts-'));
  sshd = await startSshd(join(dir, 'sshd'), { extraConfig: [`SetEnv TIDEMARK_HOME=${join(dir, 'remote-home')}`] });
  const userHome = join(dir, 'user');
  await mkdir(join(userHome, '.ssh'), { recursive: true });
  await writeFile(join(userHome, '.ssh', 'config'), await readFile(sshd.sshConfigPath, 'utf8'));
  web = await startWebConsole(join(dir, 'home'), { HOME: userHome, SSH_AUTH_SOCK: '' });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  if (web) expect(await web.stop()).toBe(0);
  await stopAgentOf(join(dir, 'remote-home'));
  await sshd?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('Hosts screen in Chromium (web mode, real sshd)', () => {
  it('adds a host from ~/.ssh/config, approves its fingerprint and shows it connected', async () => {
    const { page, pageErrors } = await openConsolePage(browser, web.url, { width: 1400, height: 900 });
    await page.getByTestId('nav-hosts').click();
    await page.getByText('No remote hosts yet').waitFor();
    await page.getByTestId('host-name').click();
    await page.getByRole('option', { name: sshd.alias }).click(); // offered from ~/.ssh/config
    await page.getByTestId('add-host').click();
    const expected = execFileSync('ssh-keygen', ['-lf', sshd.hostKeyPub], { encoding: 'utf8' }).split(' ')[1]!;
    await expect.poll(() => page.getByTestId('fingerprint').textContent(), { timeout: 20_000 }).toBe(expected);
    await page.screenshot({ path: join(shots, 'e2e-hosts-fingerprint.png') });
    await page.getByTestId('approve-host-key').click();
    await expect.poll(() => page.getByTestId('host-state').textContent(), { timeout: 30_000 }).toBe('connected');
    const row = page.getByTestId('host-row');
    await expect
      .poll(() => row.textContent(), { timeout: 10_000 })
      .toMatch(new RegExp(`v${process.versions.node.replace(/\./g, '\\.')}.*\\d+\\.\\d+\\.\\d+.*\\d+(\\.\\d+)? (GiB|TiB|MiB)`));
    await page.screenshot({ path: join(shots, 'e2e-hosts-connected.png') });
    expect(pageErrors).toEqual([]);
  });
});

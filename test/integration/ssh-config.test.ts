// ~/.ssh/config resolution checked against OpenSSH itself (`ssh -G`), for the options
// Tidemark honours.
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSshConfig, resolveHost } from '../../src-engine/ssh';
import { tempDir } from '../helpers/tmp';
import { requireTool } from '../helpers/tools';

const config = `
# site aliases
Host site-b
  HostName 10.20.30.40
  User field
  Port 2222
  IdentityFile ~/.ssh/site_b_ed25519
  ProxyJump bastion.example.com

Host *.lab !gw.lab
  User lab
  IdentityFile /keys/%h-%r

Host bastion.example.com
  User jump

Host *
  User fallback
  Port 22
`;

function sshG(file: string, alias: string): Map<string, string[]> {
  requireTool('ssh');
  const out = execFileSync('ssh', ['-G', '-F', file, alias], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const map = new Map<string, string[]>();
  for (const line of out.split('\n')) {
    const [k, ...v] = line.split(' ');
    if (!k) continue;
    map.set(k, [...(map.get(k) ?? []), v.join(' ')]);
  }
  return map;
}

describe('ssh config', () => {
  it.each(['site-b', 'db.lab', 'gw.lab', 'bastion.example.com', 'elsewhere'])('resolves %s as ssh -G does', async (alias) => {
    const dir = await tempDir();
    const file = join(dir, 'config');
    await writeFile(file, config);
    const ours = resolveHost(parseSshConfig(config), alias);
    const theirs = sshG(file, alias);
    expect(ours.hostName).toBe(theirs.get('hostname')![0]);
    expect(ours.user).toBe(theirs.get('user')![0]);
    expect(String(ours.port)).toBe(theirs.get('port')![0]);
    expect(ours.proxyJump).toBe(theirs.get('proxyjump')?.[0] ?? null);
    if (alias === 'site-b' || alias === 'db.lab') {
      // ssh -G prints IdentityFile unexpanded; expand ~, %h and %r as ssh does at use.
      const expand = (f: string) => f.replace(/^~\//, `${homedir()}/`).replace(/%h/g, theirs.get('hostname')![0]!).replace(/%r/g, theirs.get('user')![0]!);
      expect(ours.identityFiles).toEqual(theirs.get('identityfile')!.map(expand));
    }
  });

  it('a VOLREF user and port win over the file', () => {
    const resolved = resolveHost(parseSshConfig(config), 'site-b', { user: 'root', port: 2200 });
    expect(resolved).toMatchObject({ hostName: '10.20.30.40', user: 'root', port: 2200 });
  });
});

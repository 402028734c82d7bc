// known_hosts checking against OpenSSH's own tools: fingerprints equal `ssh-keygen -lf`,
// entries hashed by `ssh-keygen -H` are found, a changed key is refused naming file and line.
import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { knownHostsLine, loadKnownHosts, patternsMatch, sha256Fingerprint, verifyHostKey } from '../../src-engine/ssh';
import { tempDir } from '../helpers/tmp';
import { requireTool } from '../helpers/tools';

async function hostKey(dir: string, name: string): Promise<{ type: string; blob: Buffer; line: string }> {
  requireTool('ssh-keygen');
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path]);
  const line = (await readFile(`${path}.pub`, 'utf8')).trim();
  const [type, base64] = line.split(' ');
  return { type: type!, blob: Buffer.from(base64!, 'base64'), line: `${type} ${base64}` };
}

describe('known_hosts', () => {
  it('fingerprints match ssh-keygen -lf', async () => {
    const dir = await tempDir();
    const key = await hostKey(dir, 'k');
    const printed = execFileSync('ssh-keygen', ['-lf', join(dir, 'k.pub')], { encoding: 'utf8' }).split(' ')[1];
    expect(sha256Fingerprint(key.blob)).toBe(printed);
  });

  it('finds plain, [host]:port and ssh-keygen-hashed entries; refuses a changed key with file and line', async () => {
    const dir = await tempDir();
    const a = await hostKey(dir, 'a');
    const b = await hostKey(dir, 'b');
    const file = join(dir, 'known_hosts');
    await writeFile(file, ['# comment', `site-a,10.0.0.1 ${a.line}`, `[site-b]:2222 ${b.line}`, `hashed-host ${a.line}`, ''].join('\n'));
    execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' }); // hash every entry, as HashKnownHosts does
    expect(await readFile(file, 'utf8')).not.toContain('hashed-host');
    const entries = await loadKnownHosts([file, join(dir, 'missing')]);
    expect(verifyHostKey(entries, 'site-a', 22, a.type, a.blob).kind).toBe('match');
    expect(verifyHostKey(entries, '10.0.0.1', 22, a.type, a.blob).kind).toBe('match');
    expect(verifyHostKey(entries, 'hashed-host', 22, a.type, a.blob).kind).toBe('match');
    expect(verifyHostKey(entries, 'site-b', 2222, b.type, b.blob).kind).toBe('match');
    expect(verifyHostKey(entries, 'site-b', 22, b.type, b.blob)).toMatchObject({ kind: 'unknown', fingerprint: sha256Fingerprint(b.blob) });
    const changed = verifyHostKey(entries, 'site-a', 22, b.type, b.blob);
    expect(changed).toMatchObject({ kind: 'mismatch', entry: { file } });
    // ssh-keygen -F names the same line for that host.
    const found = execFileSync('ssh-keygen', ['-F', 'site-a', '-f', file], { encoding: 'utf8' });
    expect(found).toMatch(new RegExp(`line ${(changed as { entry: { line: number } }).entry.line}`));
  });

  it('an approved key written as a hashed line is found by ssh-keygen -F and by us', async () => {
    const dir = await tempDir();
    const key = await hostKey(dir, 'k');
    const file = join(dir, 'known_hosts');
    await writeFile(file, `${knownHostsLine('new-site', 2200, key.type, key.blob, Buffer.alloc(20, 7))}\n`);
    expect(execFileSync('ssh-keygen', ['-F', '[new-site]:2200', '-f', file], { encoding: 'utf8' })).toContain('found: line 1');
    expect(verifyHostKey(await loadKnownHosts([file]), 'new-site', 2200, key.type, key.blob).kind).toBe('match');
  });

  it('honours @revoked, wildcards and negation', async () => {
    const dir = await tempDir();
    const key = await hostKey(dir, 'k');
    const file = join(dir, 'known_hosts');
    await writeFile(file, [`*.example.com,!bad.example.com ${key.line}`, `@revoked * ${key.line}`].join('\n'));
    const entries = await loadKnownHosts([file]);
    expect(patternsMatch('*.example.com,!bad.example.com', 'ok.example.com')).toBe(true);
    expect(patternsMatch('*.example.com,!bad.example.com', 'bad.example.com')).toBe(false);
    expect(verifyHostKey(entries, 'ok.example.com', 22, key.type, key.blob).kind).toBe('revoked');
  });
});

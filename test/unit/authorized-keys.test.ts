// authorized_keys rewrites for per-pair keys (src-engine/agent/peer-keys.ts): concurrent
// authorizations lose no line, other lines stay byte for byte, a symlinked file is rewritten
// at its target with the link kept, and revoking removes exactly the pair's line.
import { lstat, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { authorizedKeysLine, peerAuthorize, peerRevoke } from '../../src-engine/agent/peer-keys';
import { tempDir } from '../helpers/tmp';

const publicKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJQPfVMft5goFtqFKezej9sxD8a5fQ/oSA4wpUyEEk7R someone@somewhere';
const line = (pairId: string) => authorizedKeysLine(pairId, publicKey, ['/usr/bin/node', '/opt/tidemark/agent.cjs'], '/var/lib/tidemark');

describe('authorized_keys for per-pair keys', () => {
  it('keeps every line of eight concurrent authorizations and the user’s own lines untouched', async () => {
    const path = join(await tempDir(), 'authorized_keys');
    const own = 'ssh-ed25519 AAAAownkey user@laptop\n# a comment\n';
    await writeFile(path, own);
    const pairs = Array.from({ length: 8 }, () => randomUUID());
    await Promise.all(pairs.map((id) => peerAuthorize(path, id, line(id))));
    const text = await readFile(path, 'utf8');
    expect(text.startsWith(own)).toBe(true);
    for (const id of pairs) expect(text).toContain(`tidemark-pair:${id}`);
    expect(text).toMatch(
      /^restrict,command="'\/usr\/bin\/node' '\/opt\/tidemark\/agent.cjs' '--home' '\/var\/lib\/tidemark' 'agent' 'dial-stdio' '--pair' '[0-9a-f-]{36}'" ssh-ed25519 \S+ tidemark-pair:/m,
    );
    await peerRevoke(path, pairs[0]!);
    expect(await readFile(path, 'utf8')).not.toContain(pairs[0]!);
    expect((await readFile(path, 'utf8')).startsWith(own)).toBe(true);
  });

  it('rewrites a symlinked authorized_keys at its target and keeps the link', async () => {
    const dir = await tempDir();
    const target = join(dir, 'real_keys');
    const link = join(dir, 'authorized_keys');
    await writeFile(target, 'ssh-ed25519 AAAAownkey user@laptop\n');
    await symlink(target, link);
    const id = randomUUID();
    await peerAuthorize(link, id, line(id));
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(await readFile(target, 'utf8')).toContain(`tidemark-pair:${id}`);
  });
});

// Remembered SSH secrets (key passphrases, passwords). Kept in memory for the process's life;
// written to disk only when the person opts in *and* an OS-keychain cipher exists (Electron's
// safeStorage), as <home>/secrets/<sha256(host)>-<sha256(slot)>.bin, mode 0600. Never plain
// text: without a cipher there is no "remember" at all.

import { createHash } from 'node:crypto';
import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode } from '../errors';
import { createDirectories, writeFileDurably } from '../fsync';

/** Encrypts with a key the OS keeps (Keychain, DPAPI, libsecret/kwallet). */
export interface SecretCipher {
  /** A name for the UI, e.g. "gnome_libsecret" or "keychain". */
  readonly backend: string;
  encrypt(plain: string): Buffer;
  decrypt(sealed: Buffer): string;
}

const digest = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 32);

export class SecretVault {
  private readonly memory = new Map<string, string>();
  private readonly dir: string;

  constructor(
    homeDir: string,
    private readonly cipher: SecretCipher | null,
  ) {
    this.dir = join(homeDir, 'secrets');
  }

  /** The keychain backend when secrets can outlive the process; null: memory only. */
  get keychain(): string | null {
    return this.cipher?.backend ?? null;
  }

  private file(host: string, slot: string): string {
    return join(this.dir, `${digest(host)}-${digest(slot)}.bin`);
  }

  async get(host: string, slot: string): Promise<string | null> {
    const cached = this.memory.get(`${host}\n${slot}`);
    if (cached !== undefined || !this.cipher) return cached ?? null;
    let sealed: Buffer;
    try {
      sealed = await readFile(this.file(host, slot));
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return null;
      throw error;
    }
    try {
      const secret = this.cipher.decrypt(sealed);
      this.memory.set(`${host}\n${slot}`, secret);
      return secret;
    } catch {
      return null; // the keychain key changed: ask again; the new answer replaces the file
    }
  }

  /** Keeps the secret in memory; on disk too when `persist` and a keychain cipher exists. */
  async put(host: string, slot: string, secret: string, persist: boolean): Promise<void> {
    this.memory.set(`${host}\n${slot}`, secret);
    if (!persist || !this.cipher) return;
    await createDirectories(this.dir, 0o700);
    await writeFileDurably(this.file(host, slot), this.cipher.encrypt(secret), 0o600);
  }

  async forget(host: string, slot: string): Promise<void> {
    this.memory.delete(`${host}\n${slot}`);
    await rm(this.file(host, slot), { force: true });
  }

  /** Forgets every secret of a host (it was removed). */
  async forgetHost(host: string): Promise<void> {
    for (const key of [...this.memory.keys()]) if (key.startsWith(`${host}\n`)) this.memory.delete(key);
    const prefix = `${digest(host)}-`;
    const names = await readdir(this.dir).catch(() => [] as string[]);
    for (const name of names) if (name.startsWith(prefix)) await rm(join(this.dir, name), { force: true });
  }
}

// The hosts a home knows: <home>/hosts.json, an atomic checksummed record. A host is an alias
// from ~/.ssh/config or an address ([user@]host[:port]); how to reach it is resolved at
// connect time, so editing ~/.ssh/config takes effect without re-adding. No credential is
// ever stored here.

import { join } from 'node:path';
import { z } from 'zod';
import { TidemarkError } from '../errors';
import { createDirectories } from '../fsync';
import { parseHostSpec, type SshHostConfig } from '../ssh';
import { defineRecord, readRecord, writeRecord } from '../store';

export const hostNamePattern = /^[A-Za-z0-9._@:[\]-]{1,128}$/;

const hostSchema = z.object({
  /** What the person typed: an ssh config alias or [user@]host[:port]; unique in the home. */
  name: z.string().regex(hostNamePattern),
  alias: z.string().min(1),
  user: z.string().nullable(),
  port: z.number().int().min(1).max(65535).nullable(),
  /** The host's Tidemark home; null: the host's default (~/.local/share/tidemark or $TIDEMARK_HOME). */
  homeDir: z.string().nullable(),
  addedAtMs: z.number().int().nonnegative(),
});
export type HostRecord = z.infer<typeof hostSchema>;

export const hostsRecordKind = defineRecord('tidemark/hosts', 1, z.object({ hosts: z.array(hostSchema) }));

export class HostStore {
  readonly path: string;
  constructor(private readonly homeDir: string) {
    this.path = join(homeDir, 'hosts.json');
  }

  async list(): Promise<HostRecord[]> {
    return (await readRecord(this.path, hostsRecordKind))?.hosts ?? [];
  }

  async add(name: string, homeDir: string | null = null): Promise<HostRecord> {
    const trimmed = name.trim();
    if (!hostNamePattern.test(trimmed)) {
      throw new TidemarkError('USAGE', `"${name}" is not a host name or address`, 'give an alias from ~/.ssh/config or [user@]host[:port]');
    }
    const spec = parseHostSpec(trimmed, 'host', 'give an alias from ~/.ssh/config or [user@]host[:port]');
    const hosts = await this.list();
    if (hosts.some((h) => h.name === trimmed)) throw new TidemarkError('ALREADY_EXISTS', `host ${trimmed} is already added`, 'pick it in the list');
    const record: HostRecord = { name: trimmed, alias: spec.alias, user: spec.user, port: spec.port, homeDir, addedAtMs: Date.now() };
    await createDirectories(this.homeDir, 0o700);
    await writeRecord(this.path, hostsRecordKind, { hosts: [...hosts, record] });
    return record;
  }

  async remove(name: string): Promise<void> {
    const hosts = await this.list();
    if (!hosts.some((h) => h.name === name)) throw new TidemarkError('NOT_FOUND', `no host ${name} in this home`, 'refresh the host list');
    await writeRecord(this.path, hostsRecordKind, { hosts: hosts.filter((h) => h.name !== name) });
  }
}

/** The concrete Host aliases of an ssh config (patterns with wildcards or negation are not hosts). */
export function sshConfigAliases(blocks: readonly { patterns: readonly string[] }[]): string[] {
  const aliases = blocks.flatMap((b) => b.patterns).filter((p) => !/[*?!]/.test(p));
  return [...new Set(aliases)];
}

export type { SshHostConfig };

// Host-key checking against OpenSSH known_hosts files: plain and hashed (|1|salt|hmac) host
// patterns, [host]:port, wildcards and negation, @revoked and @cert-authority markers.
// A host whose key differs from a recorded one is refused naming the file and line; an
// unknown host is reported with its SHA256 fingerprint for approval.

import { createHash, createHmac } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { TidemarkError, errnoCode } from '../errors';

export interface KnownHostEntry {
  readonly file: string;
  readonly line: number;
  readonly marker: 'revoked' | 'cert-authority' | null;
  readonly patterns: string;
  readonly keyType: string;
  readonly keyBase64: string;
}

export type HostKeyVerdict =
  | { readonly kind: 'match'; readonly entry: KnownHostEntry }
  | { readonly kind: 'unknown'; readonly fingerprint: string }
  | { readonly kind: 'mismatch'; readonly fingerprint: string; readonly entry: KnownHostEntry }
  | { readonly kind: 'revoked'; readonly fingerprint: string; readonly entry: KnownHostEntry }
  /** Keys of other types are recorded for the host, this one is not: refused, never approvable. */
  | { readonly kind: 'other-type'; readonly fingerprint: string; readonly keyType: string; readonly entry: KnownHostEntry };

/** `SHA256:…` as `ssh-keygen -lf` prints it (base64, no padding). */
export function sha256Fingerprint(keyBlob: Uint8Array): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

export function parseKnownHosts(text: string, file: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let marker: KnownHostEntry['marker'] = null;
    if (fields[0] === '@revoked' || fields[0] === '@cert-authority') marker = fields.shift() === '@revoked' ? 'revoked' : 'cert-authority';
    const [patterns, keyType, keyBase64] = fields;
    if (!patterns || !keyType || !keyBase64 || !/^[A-Za-z0-9+/]+=*$/.test(keyBase64)) return; // malformed lines are ignored, as ssh does
    entries.push({ file, line: index + 1, marker, patterns, keyType, keyBase64 });
  });
  return entries;
}

/** How ssh names a host in known_hosts: `host` on port 22, `[host]:port` otherwise. */
export function hostKeyName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function wildcardToRegExp(pattern: string): RegExp {
  const escaped = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`, 'i');
}

function hashedMatches(pattern: string, name: string): boolean {
  const [, magic, salt, hash] = pattern.split('|');
  if (magic !== '1' || !salt || !hash) return false;
  const digest = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
  return digest === hash;
}

/** Whether an entry's pattern list names `name` (negations win). */
export function patternsMatch(patterns: string, name: string): boolean {
  if (patterns.startsWith('|')) return hashedMatches(patterns, name);
  let matched = false;
  for (const pattern of patterns.split(',')) {
    const negated = pattern.startsWith('!');
    const body = negated ? pattern.slice(1) : pattern;
    if (wildcardToRegExp(body).test(name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** Checks a presented host key against entries from one or more files, in order. */
export function verifyHostKey(entries: readonly KnownHostEntry[], host: string, port: number, keyType: string, keyBlob: Uint8Array): HostKeyVerdict {
  const name = hostKeyName(host, port);
  const keyBase64 = Buffer.from(keyBlob).toString('base64');
  const fingerprint = sha256Fingerprint(keyBlob);
  const forHost = entries.filter((e) => e.marker !== 'cert-authority' && patternsMatch(e.patterns, name));
  const revoked = entries.find((e) => e.marker === 'revoked' && e.keyBase64 === keyBase64);
  if (revoked) return { kind: 'revoked', fingerprint, entry: revoked };
  const match = forHost.find((e) => e.marker === null && e.keyType === keyType && e.keyBase64 === keyBase64);
  if (match) return { kind: 'match', entry: match };
  // A recorded key of the same type that differs is a changed host key. A host with keys
  // recorded only of other types is refused too (OpenSSH would ask): approving a new key type
  // is exactly what a man in the middle needs. The connection prefers the recorded types
  // (recordedKeyTypes), so a real host that has one presents it.
  const changed = forHost.find((e) => e.marker === null && e.keyType === keyType);
  if (changed) return { kind: 'mismatch', fingerprint, entry: changed };
  const otherType = forHost.find((e) => e.marker === null);
  if (otherType) return { kind: 'other-type', fingerprint, keyType, entry: otherType };
  return { kind: 'unknown', fingerprint };
}

/** The key types recorded for a host (to ask the server for those first). */
export function recordedKeyTypes(entries: readonly KnownHostEntry[], host: string, port: number): string[] {
  const name = hostKeyName(host, port);
  return [...new Set(entries.filter((e) => e.marker === null && patternsMatch(e.patterns, name)).map((e) => e.keyType))];
}

/** Reads known_hosts files that exist (missing ones are simply empty). */
export async function loadKnownHosts(files: readonly string[]): Promise<KnownHostEntry[]> {
  const all: KnownHostEntry[] = [];
  for (const file of files) {
    try {
      all.push(...parseKnownHosts(await readFile(file, 'utf8'), file));
    } catch (error) {
      const code = errnoCode(error);
      if (code === 'ENOENT' || code === 'ENOTDIR') continue; // no such file: no entries
      throw new TidemarkError('IO', `cannot read known_hosts file ${file}: ${code ?? String(error)}`, 'make it readable (or move it away), then connect again');
    }
  }
  return all;
}

/** A known_hosts line recording an approved key (hashed, as HashKnownHosts does). */
export function knownHostsLine(host: string, port: number, keyType: string, keyBlob: Uint8Array, salt: Uint8Array): string {
  const name = hostKeyName(host, port);
  const hash = createHmac('sha1', salt).update(name).digest('base64');
  return `|1|${Buffer.from(salt).toString('base64')}|${hash} ${keyType} ${Buffer.from(keyBlob).toString('base64')}`;
}

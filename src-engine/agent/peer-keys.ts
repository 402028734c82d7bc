// Per-pair keys for direct shipping (docs/replication.md "Direct shipping"). On the primary's
// host the agent keeps, per pair, `peers/<pairId>/`: an ed25519 key made there (the private
// half never leaves the host), the secondary's address, the host keys the orchestrator
// verified for it (`known_hosts`) and an `ssh_config` naming them, so `ssh -F
// peers/<pairId>/ssh_config tidemark-peer` reaches the same place by hand. On the secondary's
// host the agent puts the public half in `authorized_keys`, restricted to its pair:
//   restrict,command="node …/agent.cjs --home H agent dial-stdio --pair ID" ssh-ed25519 … tidemark-pair:ID
// `restrict` forbids forwarding, ptys and X11; the forced command serves only that pair's
// shipping verbs into that pair's secondary (peer-session.ts).

import { open, readFile, realpath, rm, stat } from 'node:fs/promises';
import { homedir, hostname } from 'node:os';
import { dirname, join } from 'node:path';
import ssh2 from 'ssh2'; // a default import: ssh2 is CommonJS and its `utils` is not a detectable named export under ESM
import { z } from 'zod';
import { TidemarkError, errnoCode, fromSystemError } from '../errors';
import { createDirectories, writeFileDurably } from '../fsync';
import { defineRecord, readRecord, writeRecord } from '../store';

/** Where the primary's agent reaches the secondary's sshd, and the host keys to expect there. */
export interface PeerTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** The secondary volume's path on that host. */
  readonly secondaryPath: string;
  /** `type base64` of each host key the orchestrator verified for that host. */
  readonly hostKeys: readonly string[];
}

export const peerHostKeySchema = z.string().regex(/^[a-z0-9@.-]{1,64} [A-Za-z0-9+/]{16,4096}={0,2}$/, 'a host key "type base64"');
const hostSchema = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[A-Za-z0-9.:_-]+$/, 'a host name or address');
const userSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9._][A-Za-z0-9._-]*$/, 'a user name');
export const peerTargetSchema = z
  .object({
    host: hostSchema,
    port: z.number().int().min(1).max(65535),
    user: userSchema,
    secondaryPath: z
      .string()
      .min(1)
      .max(4096)
      .refine((p) => p.startsWith('/') && !p.includes('\0'), 'an absolute path'),
    hostKeys: z.array(peerHostKeySchema).min(1).max(16),
  })
  .strict();

const peerRecordKind = defineRecord('tidemark/peer', 1, z.object({ pairId: z.string().uuid(), target: peerTargetSchema }).strict());

export const peerAlias = 'tidemark-peer';
const keyComment = (pairId: string) => `tidemark-pair:${pairId}`;

export interface PeerFiles {
  readonly dir: string;
  readonly keyPath: string;
  readonly knownHostsPath: string;
  readonly sshConfigPath: string;
}

export function peerFilesOf(homeDir: string, pairId: string): PeerFiles {
  const dir = join(homeDir, 'peers', pairId);
  return { dir, keyPath: join(dir, 'id_ed25519'), knownHostsPath: join(dir, 'known_hosts'), sshConfigPath: join(dir, 'ssh_config') };
}

/** `[host]:port` as known_hosts names a host on another port than 22. */
const knownHostName = (host: string, port: number) => (port === 22 ? host : `[${host}]:${port}`);

/** The primary's side: the pair's key (made once, kept across re-targeting) and where it leads. Returns the public key. */
export async function peerKeyCreate(homeDir: string, pairId: string, target: PeerTarget): Promise<string> {
  const files = peerFilesOf(homeDir, pairId);
  await createDirectories(files.dir, 0o700);
  let publicKey = await readFile(`${files.keyPath}.pub`, 'utf8').catch(() => undefined);
  if (publicKey === undefined) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment: `${keyComment(pairId)}@${hostname()}` });
    await writeFileDurably(files.keyPath, pair.private, 0o600);
    await writeFileDurably(`${files.keyPath}.pub`, `${pair.public}\n`, 0o644);
    publicKey = pair.public;
  }
  const name = knownHostName(target.host, target.port);
  await writeFileDurably(files.knownHostsPath, target.hostKeys.map((key) => `${name} ${key}\n`).join(''), 0o600);
  const config = [
    `Host ${peerAlias}`,
    `  HostName ${target.host}`,
    `  Port ${target.port}`,
    `  User ${target.user}`,
    `  IdentityFile ${files.keyPath}`,
    '  IdentitiesOnly yes',
    `  UserKnownHostsFile ${files.knownHostsPath}`,
    '  StrictHostKeyChecking yes',
    '',
  ].join('\n');
  await writeFileDurably(files.sshConfigPath, config, 0o600);
  await writeRecord(join(files.dir, 'peer.json'), peerRecordKind, { pairId, target });
  return publicKey.trim();
}

export async function peerTargetOf(homeDir: string, pairId: string): Promise<PeerTarget | null> {
  const record = await readRecord(join(peerFilesOf(homeDir, pairId).dir, 'peer.json'), peerRecordKind);
  return record?.target ?? null;
}

/** Forgets the pair's key on the primary's side (idempotent). */
export async function peerKeyRemove(homeDir: string, pairId: string): Promise<void> {
  await rm(peerFilesOf(homeDir, pairId).dir, { recursive: true, force: true });
}

// ----- the secondary's side: authorized_keys -----

/** The file sshd reads for this user: $TIDEMARK_AUTHORIZED_KEYS (tests, unusual sshd setups), else ~/.ssh/authorized_keys. */
export function authorizedKeysPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.TIDEMARK_AUTHORIZED_KEYS || join(homedir(), '.ssh', 'authorized_keys');
}

const publicKeySchema = z.string().regex(/^ssh-ed25519 [A-Za-z0-9+/]{60,80}={0,2}(?: \S{1,200})?$/, 'an ssh-ed25519 public key');

/** A command sshd runs through the user's shell: each word single-quoted; no `"` or `\` (they would end the option). */
function forcedCommand(argv: readonly string[]): string {
  for (const word of argv) {
    if (/["\\\n\0]/.test(word))
      throw new TidemarkError(
        'USAGE',
        `cannot restrict a peer key to a command containing ${JSON.stringify(word)}`,
        'install Tidemark and its home under paths without quotes or backslashes',
      );
  }
  return argv.map((word) => `'${word.replace(/'/g, `'\\''`)}'`).join(' ');
}

export function authorizedKeysLine(pairId: string, publicKey: string, agentArgv: readonly string[], homeDir: string): string {
  const parsed = publicKeySchema.safeParse(publicKey.trim());
  if (!parsed.success)
    throw new TidemarkError('USAGE', `the peer key of pair ${pairId} is not an ssh-ed25519 public key`, 'provision the pair again (tidemark pair link)');
  const [type, blob] = parsed.data.split(' ');
  const command = forcedCommand([...agentArgv, '--home', homeDir, 'agent', 'dial-stdio', '--pair', pairId]);
  return `restrict,command="${command}" ${type} ${blob} ${keyComment(pairId)}`;
}

/** One rewrite at a time in this process; a lock file beside the target keeps other processes (another home's agent) out too. */
let rewrites: Promise<unknown> = Promise.resolve();
const lockWaitMsMax = 10_000;
const lockStaleMs = 30_000;

async function withLockFile<T>(target: string, work: () => Promise<T>): Promise<T> {
  const lockPath = `${target}.tidemark-lock`;
  const deadline = Date.now() + lockWaitMsMax;
  for (;;) {
    try {
      await (await open(lockPath, 'wx', 0o600)).close();
      break;
    } catch (error) {
      if (errnoCode(error) !== 'EEXIST') throw fromSystemError(error, 'lock', target);
      const info = await stat(lockPath).catch(() => null);
      if (info && Date.now() - info.mtimeMs > lockStaleMs) await rm(lockPath, { force: true });
      else if (Date.now() > deadline)
        throw new TidemarkError(
          'BUSY',
          `${target} is being rewritten by another process (${lockPath})`,
          'try again; remove the lock file if no Tidemark agent runs',
        );
      else await new Promise((wake) => setTimeout(wake, 20));
    }
  }
  try {
    return await work();
  } finally {
    await rm(lockPath, { force: true });
  }
}

/**
 * Rewrites authorized_keys under the locks, re-reading it inside them (no lost update). A
 * symlinked file is rewritten at its target, the link kept.
 */
function rewriteAuthorizedKeys(path: string, edit: (lines: string[]) => string[]): Promise<void> {
  const run = rewrites.then(async () => {
    await createDirectories(dirname(path), 0o700);
    const target = await realpath(path).catch(() => path);
    await withLockFile(target, () => rewriteNow(target, edit));
  });
  rewrites = run.catch(() => undefined);
  return run;
}

async function rewriteNow(path: string, edit: (lines: string[]) => string[]): Promise<void> {
  let text = '';
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT')
      throw new TidemarkError('IO', `cannot read ${path}: ${errnoCode(error) ?? String(error)}`, 'make it readable by this user');
  }
  const lines = text.split('\n').filter((line, i, all) => line !== '' || i < all.length - 1);
  const kept = edit(lines);
  if (kept.length === lines.length && kept.every((line, i) => line === lines[i])) return; // nothing to change: the file is left alone
  await writeFileDurably(path, kept.length > 0 ? `${kept.join('\n')}\n` : '', 0o600);
}

const isPairLine = (pairId: string) => (line: string) => line.trimEnd().endsWith(` ${keyComment(pairId)}`);

/** The secondary's side: lets the pair's key in, for its forced command only (replacing an older key of the pair). */
export async function peerAuthorize(path: string, pairId: string, line: string): Promise<void> {
  await rewriteAuthorizedKeys(path, (lines) => [...lines.filter((l) => !isPairLine(pairId)(l)), line]);
}

/** Takes the pair's key out of authorized_keys (idempotent); other lines are kept byte for byte. */
export async function peerRevoke(path: string, pairId: string): Promise<void> {
  await rewriteAuthorizedKeys(path, (lines) => lines.filter((l) => !isPairLine(pairId)(l)));
}

// The parts of ~/.ssh/config Tidemark honours: Host blocks (wildcards, negation, first value
// wins, as in OpenSSH), HostName, User, Port, IdentityFile (repeatable, ~ and %h %u %p %%
// expanded) and ProxyJump (first hop). Checked against `ssh -G` in the tests.

import { readFile } from 'node:fs/promises';
import { homedir, userInfo } from 'node:os';
import { errnoCode } from '../errors';
import { patternsMatch } from './known-hosts';

export interface SshHostConfig {
  readonly alias: string;
  readonly hostName: string;
  readonly user: string;
  readonly port: number;
  readonly identityFiles: readonly string[];
  readonly proxyJump: string | null;
}

interface Block {
  readonly patterns: string[];
  readonly options: [keyword: string, value: string][];
}

/** `user@host:port`, how a resolved host is named in messages and prompts. */
export function targetOf(host: Pick<SshHostConfig, 'user' | 'hostName' | 'port'>): string {
  return `${host.user}@${host.hostName}:${host.port}`;
}

export function parseSshConfig(text: string): Block[] {
  const blocks: Block[] = [{ patterns: ['*'], options: [] }]; // options before any Host apply to all
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const match = /^(\S+?)(?:\s*=\s*|\s+)(.*)$/.exec(line);
    if (!match) continue;
    const keyword = match[1]!.toLowerCase();
    const value = match[2]!.trim().replace(/^"(.*)"$/, '$1');
    if (keyword === 'host') blocks.push({ patterns: value.split(/\s+/), options: [] });
    else if (keyword === 'match')
      blocks.push({ patterns: ['!*'], options: [] }); // Match blocks are not supported: never applied
    else blocks[blocks.length - 1]!.options.push([keyword, value]);
  }
  return blocks;
}

function blockApplies(block: Block, alias: string): boolean {
  let matched = false;
  for (const pattern of block.patterns) {
    if (pattern.startsWith('!')) {
      if (patternsMatch(pattern.slice(1), alias)) return false;
    } else if (patternsMatch(pattern, alias)) {
      matched = true;
    }
  }
  return matched;
}

function expandTokens(value: string, tokens: { h: string; u: string; p: number; r: string }): string {
  const withHome = value.startsWith('~/') ? `${homedir()}${value.slice(1)}` : value;
  return withHome.replace(/%([%hupr])/g, (_, t: string) =>
    t === '%' ? '%' : t === 'h' ? tokens.h : t === 'u' ? tokens.u : t === 'p' ? String(tokens.p) : tokens.r,
  );
}

/** Resolves `alias` as ssh would; `overrides` (from a VOLREF) win over the file. */
export function resolveHost(blocks: readonly Block[], alias: string, overrides: { user?: string | null; port?: number | null } = {}): SshHostConfig {
  const first = new Map<string, string>();
  const identityFiles: string[] = [];
  for (const block of blocks) {
    if (!blockApplies(block, alias)) continue;
    for (const [keyword, value] of block.options) {
      if (keyword === 'identityfile') identityFiles.push(value);
      else if (!first.has(keyword)) first.set(keyword, value);
    }
  }
  const hostName = (first.get('hostname') ?? alias).replace(/%h/g, alias);
  const user = overrides.user ?? first.get('user') ?? userInfo().username;
  const port = overrides.port ?? Number(first.get('port') ?? 22);
  const tokens = { h: hostName, u: userInfo().username, p: port, r: user };
  const defaults = ['~/.ssh/id_rsa', '~/.ssh/id_ecdsa', '~/.ssh/id_ed25519'];
  const proxyJump = first.get('proxyjump');
  return {
    alias,
    hostName,
    user,
    port,
    identityFiles: (identityFiles.length > 0 ? identityFiles : defaults).map((f) => expandTokens(f, tokens)),
    proxyJump: proxyJump && proxyJump.toLowerCase() !== 'none' ? proxyJump.split(',')[0]!.trim() : null,
  };
}

export async function loadSshConfig(path = `${homedir()}/.ssh/config`): Promise<Block[]> {
  try {
    return parseSshConfig(await readFile(path, 'utf8'));
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return parseSshConfig('');
    throw error;
  }
}

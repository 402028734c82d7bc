// Where each host's agent listens, as the last full connection found it (`<home>/known-agents.json`
// on the orchestrator): the next connection forwards straight to that socket and skips the
// three execs of the full way (`node --version`, the bundle's SFTP stat, `agent ensure`) — about
// a second per host per command. A cache only: keyed by the resolved target and the host's
// Tidemark home, valid for the agent bundle it was learnt with; unreadable or stale, it is
// ignored and rewritten, never an error. Design: docs/hosts.md "Connecting".

import { z } from 'zod';
import { defineRecord, readRecord, writeRecord } from '../store';
import type { KnownAgent } from './remote-agent';
import { bundleDigestOf } from './remote-agent';

const entriesMax = 256;

const knownAgentsKind = defineRecord(
  'tidemark/known-agents',
  1,
  z.object({
    entries: z.record(
      z.string().max(1000),
      z.object({ socketPath: z.string().startsWith('/').max(4096), bundleDigest: z.string().regex(/^[0-9a-f]{64}$/), seenAtMs: z.number().int() }).strict(),
    ),
  }),
);
type Entries = z.infer<typeof knownAgentsKind.schema>['entries'];

export interface KnownAgents {
  get(key: string): Promise<KnownAgent | null>;
  /** Records the socket (null: forget the entry). Best effort: a cache that cannot be written is skipped. */
  set(key: string, known: KnownAgent | null): Promise<void>;
}

/** The key of a connection: who logs in where, and which Tidemark home there. */
export function knownAgentKey(target: { user: string; hostName: string; port: number }, homeDir: string | null | undefined): string {
  return `${target.user}@${target.hostName}:${target.port} ${homeDir ?? '(default home)'}`;
}

export function knownAgentsFile(path: string, bundlePath: string): KnownAgents {
  const read = async (): Promise<Entries> => (await readRecord(path, knownAgentsKind).catch(() => undefined))?.entries ?? {};
  return {
    async get(key) {
      const entry = (await read())[key];
      if (!entry) return null;
      const digest = await bundleDigestOf(bundlePath).catch(() => null);
      return entry.bundleDigest === digest ? { socketPath: entry.socketPath } : null;
    },
    async set(key, known) {
      try {
        const entries = await read();
        if (known) entries[key] = { socketPath: known.socketPath, bundleDigest: await bundleDigestOf(bundlePath), seenAtMs: Date.now() };
        else delete entries[key];
        const kept = Object.entries(entries)
          .sort(([, a], [, b]) => b.seenAtMs - a.seenAtMs)
          .slice(0, entriesMax);
        await writeRecord(path, knownAgentsKind, { entries: Object.fromEntries(kept) });
      } catch {
        // A cache: the next full connection tries again.
      }
    },
  };
}

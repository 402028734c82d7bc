// Seed image test helpers: file digests, copies of an image, a manifest rewritten with a
// consistent checksum (so only the limits or names can refuse it), and a target's fingerprint.
import { createHash } from 'node:crypto';
import { cp, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgentApi } from '../../src-engine/agent';

export async function sha256File(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

/** Every file of an image directory with its SHA-256, by name. */
export async function imageDigests(dir: string): Promise<Record<string, string>> {
  const names = (await readdir(dir)).sort();
  return Object.fromEntries(await Promise.all(names.map(async (name) => [name, await sha256File(join(dir, name))] as const)));
}

export async function copyImage(from: string, to: string): Promise<void> {
  await cp(from, to, { recursive: true, verbatimSymlinks: true });
}

type Json = Record<string, unknown>;

/** Rewrites manifest.json's body through `change`, with the envelope's sha256 recomputed. */
export async function forgeManifest(dir: string, change: (body: Json) => void): Promise<void> {
  const path = join(dir, 'manifest.json');
  const envelope = JSON.parse(await readFile(path, 'utf8')) as { body: Json; sha256: string };
  change(envelope.body);
  envelope.sha256 = createHash('sha256').update(JSON.stringify(envelope.body)).digest('hex');
  await writeFile(path, `${JSON.stringify(envelope, null, 2)}\n`);
}

/** What an import must not change when it refuses: the bytes, the realization map, the marker, the member. */
export async function targetFingerprint(agent: AgentApi, path: string): Promise<{ sha256: string; realized: number[]; importing: unknown; members: unknown }> {
  const map = await agent.realizedMap(path);
  const state = await agent.volumeState(path);
  return { sha256: await sha256File(path), realized: [...map.words], importing: state.importing, members: state.members };
}

/** XORs one byte of a file with 0xff. */
export async function flipByte(path: string, offsetBytes: number): Promise<void> {
  const bytes = await readFile(path);
  bytes[offsetBytes]! ^= 0xff;
  await writeFile(path, bytes);
}

// A periodic cycle's apply interrupted by SIGKILL of the agent (docs/replication.md "Periodic
// cycles", step 3), with real processes: the home's agent runs as `tidemark agent serve` (the
// built CLI) and owns both volumes; this process drives cycles through its socket while a
// numbered-record writer (test/helpers/records.ts) writes to the primary. The agent is started
// with TIDEMARK_TEST_APPLY_DELAY_MS (test-only, src-engine/agent/staging.ts), which waits
// before each region an apply copies, so the kill lands inside the copy at a chosen point:
// after j of the cycle's changing regions reached the secondary, j drawn from a printed seed.
// Right after the kill the secondary is a mix (proof the kill hit the copy); once an agent
// opens the volume again it finishes the apply from its redo record, and the secondary is
// exactly the cycle's snapshot S_k — the primary after records 1..m. `tidemark replicate
// --once` then finishes the cycle, a last cycle makes the volumes identical, `tidemark verify`
// exits 0.
import type { ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentApi, RpcAgent } from '../../src-engine/agent';
import { testApplyDelayEnv } from '../../src-engine/agent/staging';
import { PairStore, cycleSnapshotLabel, runCycle, type PairEndpoints, type PairRecord } from '../../src-engine/replication';
import { tidemark } from '../helpers/cli';
import { connectAgent, killAgent, serveAgent } from '../helpers/served-agent';
import { until } from '../helpers/engine';
import { seededRandom } from '../helpers/random';
import { NumberedRecords, RecordWriter } from '../helpers/records';
import { tempDir } from '../helpers/tmp';

const regionBytes = 4096;
const regionCount = 64;
const sizeBytes = regionBytes * regionCount;
const baseSeed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261124);
const records = new NumberedRecords(regionBytes, regionCount);
/** Per region copied by an apply (the killed agent only): 64 regions take ~1.6 s, the poll below sees each one land. */
const applyDelayMs = 25;

const children: ChildProcess[] = [];
const agents: RpcAgent[] = [];
afterEach(async () => {
  for (const agent of agents.splice(0)) await agent.dispose().catch(() => undefined);
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

async function snapshotImage(agent: AgentApi, path: string, snapshotId: string): Promise<Buffer> {
  const image = Buffer.alloc(sizeBytes);
  for await (const { regionIndex, data } of agent.readRegions(path, 0, regionCount, { snapshotId })) Buffer.from(data).copy(image, regionIndex * regionBytes);
  return image;
}

const regionOf = (bytes: Buffer, r: number) => bytes.subarray(r * regionBytes, (r + 1) * regionBytes);

function ok(result: { status: number; stdout: string; stderr: string }): string {
  expect(result.status, result.stderr).toBe(0);
  return result.stdout;
}

describe('periodic apply killed by SIGKILL', () => {
  it('the agent killed mid-apply at seeded points: the redo record finishes the apply, the secondary is exactly S_k, the next cycle converges', async () => {
    const dir = await tempDir('tm-');
    const home = join(dir, 'h'); // short: Unix socket paths are limited
    const primaryPath = join(dir, 'p.img');
    const secondaryPath = join(dir, 's.img');
    const cli = (...args: string[]) => tidemark(['--home', home, ...args]);
    const delayed = { [testApplyDelayEnv]: String(applyDelayMs) };
    let child = await serveAgent(home, delayed, children);
    let agent = await connectAgent(home, agents);
    await agent.volumeCreate(primaryPath, sizeBytes, regionBytes);
    await agent.volumeCreate(secondaryPath, sizeBytes, regionBytes);
    ok(cli('pair', 'create', 'p', '--primary', primaryPath, '--secondary', secondaryPath, '--mode', 'periodic', '--region-size', '4KiB'));
    ok(cli('sync', 'p'));
    const store = new PairStore(home);
    const pair: PairRecord = await store.require('p');
    const endpointsOf = (a: AgentApi): PairEndpoints => ({
      primary: { volref: primaryPath, agent: a, path: primaryPath, where: 'this machine' },
      secondary: { volref: secondaryPath, agent: a, path: secondaryPath, where: 'this machine' },
    });
    let acked = 0;
    for (let round = 0; round < 3; round++) {
      const seed = baseSeed + 60 + round;
      const random = seededRandom(seed); // the kill point
      const before = await readFile(secondaryPath); // the secondary changes only inside an apply
      const writer = new RecordWriter(agent, primaryPath, records, seededRandom(seed + 1000), acked);
      writer.start();
      await until(() => writer.acked >= acked + 150, 10_000, '150 records written');
      const ackedBeforeCycle = writer.acked;
      let stopping: Promise<void> | undefined;
      let applying = false;
      const cycle = runCycle({
        store,
        pair,
        endpoints: endpointsOf(agent),
        onProgress: (p) => {
          if (p.phase !== 'applying') return;
          applying = true;
          stopping = writer.stop(); // no write in flight at the kill
        },
      });
      cycle.catch(() => undefined); // awaited below
      await until(() => applying, 20_000, 'the cycle to apply');
      await stopping;
      acked = writer.acked;
      const k = 2 * round + 1; // each round's replicate --once below runs two cycles
      const snapshot = (await agent.snapshotList(primaryPath)).snapshots.find((s) => s.label === cycleSnapshotLabel(pair.pairId, k));
      expect(snapshot, `S_${k}`).toBeDefined();
      const target = await snapshotImage(agent, primaryPath, snapshot!.snapshotId);
      const changing = Array.from({ length: regionCount }, (_, r) => r).filter((r) => !regionOf(target, r).equals(regionOf(before, r)));
      expect(changing.length).toBeGreaterThan(8);
      // 1 ≤ j ≤ |changing| - 8: at least 8 copies (200 ms) left when the poll sees the j-th land.
      const j = 1 + Math.floor(random() * (changing.length - 8));
      console.log(`[periodic-apply-kill] round ${round} seed ${seed}: kill after ${j} of ${changing.length} changing regions of cycle ${k}`);
      const landed = (bytes: Buffer) => changing.filter((r) => regionOf(bytes, r).equals(regionOf(target, r))).length;
      let seen = 0;
      await until(
        async () => {
          seen = landed(await readFile(secondaryPath));
          return seen >= j;
        },
        20_000,
        `${j} regions of cycle ${k} applied`,
      );
      await killAgent(child);
      await expect(cycle).rejects.toThrow();
      const torn = await readFile(secondaryPath);
      const landedAtKill = landed(torn);
      console.log(`[periodic-apply-kill] round ${round}: ${landedAtKill} of ${changing.length} regions applied at the kill`);
      expect(landedAtKill).toBeGreaterThanOrEqual(j);
      expect(landedAtKill, 'the kill hit the middle of the copy').toBeLessThan(changing.length);

      // A new agent finishes the apply when it opens the secondary (the delay slows applies, not this redo).
      child = await serveAgent(home, delayed, children);
      agent = await connectAgent(home, agents);
      const member = (await agent.volumeState(secondaryPath)).members.find((m) => m.pairId === pair.pairId);
      expect(member?.appliedCycle).toBe(k);
      const recovered = await readFile(secondaryPath);
      expect(recovered.equals(target), `the secondary is exactly S_${k}`).toBe(true);
      const m = records.prefixHeld(recovered, `secondary after the redo of cycle ${k}`);
      expect(m).toBeGreaterThanOrEqual(ackedBeforeCycle);
      expect(m).toBeLessThanOrEqual(acked);

      // The CLI finishes the cycle — applied already, so only its clean-up runs — and, since that
      // cycle froze before the call (without the records written after S_k), runs one more.
      const finished = JSON.parse(ok(cli('--json', 'replicate', 'p', '--once'))) as {
        cycles: { cycle: number; resumed: boolean; regionsTransferred: number }[];
      };
      expect(finished.cycles).toEqual([
        expect.objectContaining({ cycle: k, resumed: true, regionsTransferred: 0 }),
        expect.objectContaining({ cycle: k + 1, resumed: false }),
      ]);
      expect((await agent.snapshotList(primaryPath)).snapshots.filter((s) => s.label.startsWith('tidemark-cycle'))).toEqual([]);
      expect((await readFile(secondaryPath)).equals(await readFile(primaryPath))).toBe(true); // the writer stopped before the kill
      expect(records.prefixHeld(await readFile(secondaryPath))).toBe(acked);
    }
    // More records, then a cycle with the writer stopped: identical, and verify says so.
    const writer = new RecordWriter(agent, primaryPath, records, seededRandom(baseSeed + 69), acked);
    writer.start();
    await until(() => writer.acked >= acked + 100, 10_000, '100 more records');
    await writer.stop();
    const last = JSON.parse(ok(cli('--json', 'replicate', 'p', '--once'))) as { cycles: { cycle: number }[] };
    expect(last.cycles).toEqual([expect.objectContaining({ cycle: 7 })]); // three rounds of two cycles before it
    expect((await readFile(secondaryPath)).equals(await readFile(primaryPath))).toBe(true);
    expect(records.prefixHeld(await readFile(secondaryPath))).toBe(writer.acked);
    ok(cli('verify', 'p'));
  });
});

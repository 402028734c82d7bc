// The AgentApi contract suite: the same tests run against every AgentApi implementation —
// in-process, over RPC on a Unix socket (test/integration/agent-contract.test.ts) and over SSH
// (test/system/agent-contract-ssh.test.ts). Both sides must behave identically, errors included.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AgentApi } from '../../src-engine/agent';
import { TidemarkError } from '../../src-engine/errors';
import { signBytes } from '../../src-engine/signature';
import { randomBytes, seededRandom } from './random';

const isCode = (code: string) => (e: unknown) => e instanceof TidemarkError && e.code === code && e.hint.length > 0;

export interface ContractAgent {
  readonly agent: AgentApi;
  /** A directory the agent's host can write (volumes are created in it). */
  readonly dir: string;
}

export interface ContractTarget {
  readonly name: string;
  make(): Promise<ContractAgent>;
  /** The pid and Node version the agent must report. */
  readonly expectedInfo: () => Promise<{ pid: number; nodeVersion: string }>;
}

/** The AgentApi contract: every implementation must pass it, errors included. */
export function agentContract(target: ContractTarget): void {
  const makeAgent = () => target.make();
  describe(`AgentApi contract (${target.name})`, () => {
    it('reports versions', async () => {
      const { agent } = await makeAgent();
      const info = await agent.info();
      const expected = await target.expectedInfo();
      expect(info.nodeVersion).toBe(expected.nodeVersion);
      expect(info.pid).toBe(expected.pid);
      expect(info.agentVersion).toMatch(/^\d+\.\d+\.\d+/);
    });

    it('creates a volume, writes and reads regions byte-exactly, tracks realization', async () => {
      const { agent, dir } = await makeAgent();
      const path = join(dir, 'v.img');
      const regionBytes = 1024 * 1024;
      const record = await agent.volumeCreate(path, 4 * regionBytes + 4096, regionBytes);
      expect(record.regionBytes).toBe(regionBytes);
      const random = seededRandom(11);
      const data = [randomBytes(random, regionBytes), randomBytes(random, 4096)];
      await agent.writeRegion(path, 1, data[0]!);
      await agent.writeRegion(path, 4, data[1]!); // the short last region
      await agent.flush(path);
      const read: { regionIndex: number; data: Uint8Array }[] = [];
      for await (const region of agent.readRegions(path, 0, 5)) read.push(region);
      expect(read.map((r) => r.regionIndex)).toEqual([0, 1, 2, 3, 4]);
      expect(Buffer.from(read[1]!.data).equals(data[0]!)).toBe(true);
      expect(Buffer.from(read[4]!.data).equals(data[1]!)).toBe(true);
      expect(read[0]!.data.every((b) => b === 0)).toBe(true);
      const realized = await agent.realizedMap(path);
      expect(realized).toMatchObject({ regionCount: 5, source: 'tracked' });
      expect(realized.words[0]).toBe(0b10010);
      expect(await agent.volumeInfo(path)).toMatchObject({ regions: 5, realizedRegions: 2, realizedSource: 'tracked' });
    });

    it('streams signatures equal to the reference for every region, both hashes', async () => {
      const { agent, dir } = await makeAgent();
      const path = join(dir, 'v.img');
      await agent.volumeCreate(path, 8 * 65536, 65536);
      const random = seededRandom(5);
      const regions = Array.from({ length: 8 }, () => randomBytes(random, 65536));
      for (const [i, data] of regions.entries()) await agent.writeRegion(path, i, data);
      for (const hash of ['xxh3-128', 'sha256'] as const) {
        const seen = new Map<number, string>();
        for await (const batch of agent.signatures(path, hash, 2, 5)) {
          const width = batch.signatures.length / batch.regionIndexes.length;
          batch.regionIndexes.forEach((r, i) => seen.set(r, Buffer.from(batch.signatures.subarray(i * width, (i + 1) * width)).toString('hex')));
        }
        expect([...seen.keys()].sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6]);
        for (const [r, hex] of seen) {
          const expected =
            hash === 'sha256' ? createHash('sha256').update(regions[r]!).digest('hex') : Buffer.from(await signBytes(hash, regions[r]!)).toString('hex');
          expect(hex, `region ${r} ${hash}`).toBe(expected);
        }
      }
    });

    it('errors keep their code and hint: missing volume, regions out of range, existing file', async () => {
      const { agent, dir } = await makeAgent();
      await expect(agent.volumeInfo(join(dir, 'missing.img'))).rejects.toSatisfy(isCode('NOT_FOUND'));
      const path = join(dir, 'v.img');
      await agent.volumeCreate(path, 4 * 4096, 4096);
      await expect(agent.writeRegion(path, 4, new Uint8Array(4096))).rejects.toSatisfy(isCode('USAGE'));
      await expect(agent.writeRegion(path, 0, new Uint8Array(10))).rejects.toSatisfy(isCode('USAGE'));
      await expect(agent.volumeCreate(path, 4096, 4096)).rejects.toSatisfy(isCode('ALREADY_EXISTS'));
      const reading = async () => {
        for await (const _ of agent.readRegions(path, 2, 5)) void _;
      };
      await expect(reading()).rejects.toSatisfy(isCode('USAGE'));
    });

    it('a cancelled read stops with CANCELLED', async () => {
      const { agent, dir } = await makeAgent();
      const path = join(dir, 'v.img');
      await agent.volumeCreate(path, 64 * 4096, 4096);
      const controller = new AbortController();
      let got = 0;
      const reading = async () => {
        for await (const _ of agent.readRegions(path, 0, 64, { signal: controller.signal })) {
          void _;
          got += 1;
          if (got === 3) controller.abort();
        }
      };
      await expect(reading()).rejects.toSatisfy((e: unknown) => e instanceof TidemarkError && e.code === 'CANCELLED');
      expect(got).toBeLessThan(64);
    });
  });
}

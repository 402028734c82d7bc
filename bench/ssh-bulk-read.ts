// ssh-bulk-read: reading a 1 GiB page-cached volume's regions from a remote agent over loopback
// SSH (ssh2 → sshd → the agent's socket) against `ssh host cat file > /dev/null` through the
// same sshd in the same run — twice: with a stock sshd and each client's default cipher (what
// a user gets: the comparison), and with both held to AES-GCM (ssh-bulk-read-same-cipher).

import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { RpcAgent } from '../src-engine/agent';
import { GiB, MiB, scaledCount, type BenchContext, type Benchmark } from './benchmark';
import { makeFigure } from './report';
import { benchCipher, shellQuote, withSshHarness, type SshHarness } from './ssh-harness';
import { regionStamp, writeTestFile, type TestFile } from './test-file';
import { measureRounds, percentile, runCommand } from './timing';

const fileBytesBase = 1 * GiB;
/** The agent reads a file it has no record of in Tidemark's default region size. */
const regionBytes = 1 * MiB;
const rounds = 3;

type Contender = 'sshCat' | 'tidemark';

/** Streams every region, checking order, size and each region's stamp; returns the bytes read. */
async function readAllRegions(agent: RpcAgent, file: TestFile): Promise<number> {
  let regionIndex = 0;
  let bytes = 0;
  for await (const region of agent.readRegions(file.path, 0, file.regionCount)) {
    if (region.regionIndex !== regionIndex || region.data.length !== file.regionBytes || regionStamp(region.data) !== regionIndex) {
      throw new Error(`ssh-bulk-read: region ${region.regionIndex} (${region.data.length} bytes) arrived where region ${regionIndex} was due`);
    }
    regionIndex += 1;
    bytes += region.data.length;
  }
  if (regionIndex !== file.regionCount) throw new Error(`ssh-bulk-read: ${regionIndex} of ${file.regionCount} regions arrived`);
  return bytes;
}

/** One untimed pass of each, checking that both deliver the whole file. */
async function warmUp(harness: SshHarness, agent: RpcAgent, file: TestFile, catCommand: string): Promise<void> {
  const tidemarkBytes = await readAllRegions(agent, file);
  const sshBytes = await harness.sshCountBytes(catCommand);
  if (tidemarkBytes !== file.fileBytes || sshBytes !== file.fileBytes) {
    throw new Error(`ssh-bulk-read: read ${tidemarkBytes} bytes over Tidemark and ${sshBytes} over ssh cat, expected ${file.fileBytes}`);
  }
}

const gibPerSecond = (bytes: number, elapsedMs: number) => bytes / GiB / (elapsedMs / 1000);

async function measure(context: BenchContext, harness: SshHarness, file: TestFile, variant: Variant): Promise<void> {
  const remote = await harness.openAgent(join(harness.dir, 'home'));
  const catCommand = `cat ${shellQuote(file.path)}`;
  context.log(`ssh-bulk-read: warming up (one untimed read each, checking both deliver the whole file)`);
  await warmUp(harness, remote.agent, file, catCommand);
  context.log(`${variant.name}: ${variant.describe}; ssh2 negotiated ${harness.tidemarkCipher}, OpenSSH ${harness.opensshCipher}`);
  context.log(`ssh-bulk-read: timing ${file.regionCount} regions of ${file.regionBytes / MiB} MiB against ssh cat, ${rounds} interleaved rounds, median`);
  const samplesMs = await measureRounds<Contender>(rounds, {
    sshCat: () => harness.sshToDevNull(catCommand),
    tidemark: () => readAllRegions(remote.agent, file),
  });
  const medianMs = (contender: Contender) => percentile(samplesMs[contender], 50);
  const tidemark = gibPerSecond(file.fileBytes, medianMs('tidemark'));
  const sshCat = gibPerSecond(file.fileBytes, medianMs('sshCat'));
  context.record(
    makeFigure({
      name: variant.name,
      tidemark: { value: tidemark, unit: 'GiB/s' },
      peer: { name: 'ssh-cat', value: sshCat, unit: 'GiB/s' },
      ratio: tidemark / sshCat,
      goal: 0.8,
      details: {
        seed: context.seed,
        fileBytes: file.fileBytes,
        regionBytes: file.regionBytes,
        regionCount: file.regionCount,
        sshdCiphers: variant.cipher ?? 'stock',
        tidemarkNegotiatedCipher: harness.tidemarkCipher,
        opensshNegotiatedCipher: harness.opensshCipher,
        rounds,
        tidemarkMedianMs: medianMs('tidemark'),
        peerMedianMs: medianMs('sshCat'),
        tidemarkMs: samplesMs.tidemark,
        peerMs: samplesMs.sshCat,
        target: 1,
        note: `goal 0.8x ssh cat, target 1.0x; ${variant.describe}`,
      },
    }),
  );
  await remote.agent.dispose();
}

interface Variant {
  readonly name: string;
  readonly cipher: string | null;
  readonly describe: string;
}

const variants: readonly Variant[] = [
  { name: 'ssh-bulk-read', cipher: null, describe: 'stock sshd, each client with its default cipher' },
  { name: 'ssh-bulk-read-same-cipher', cipher: benchCipher, describe: `sshd offers only ${benchCipher}, both sides use it` },
];

async function run(context: BenchContext): Promise<void> {
  const fileBytes = scaledCount(fileBytesBase, context.sizeFactor, regionBytes);
  for (const variant of variants) {
    await withSshHarness(variant.name, variant.cipher, async (harness) => {
      context.log(`${variant.name}: writing a ${(fileBytes / GiB).toFixed(2)} GiB test file (seed ${context.seed}) in ${harness.dir}`);
      const startMs = performance.now();
      const file = await writeTestFile(join(harness.dir, 'volume.bin'), fileBytes, regionBytes, context.seed);
      context.log(`${variant.name}: written in ${Math.round(performance.now() - startMs)} ms; warming the page cache (cat > /dev/null)`);
      await runCommand('cat', [file.path]);
      await measure(context, harness, file, variant);
    });
  }
}

export const sshBulkReadBenchmark: Benchmark = {
  name: 'ssh-bulk-read',
  description:
    'regions of a 1 GiB page-cached volume from a remote agent over loopback SSH vs ssh host cat file > /dev/null (stock ciphers, then both on AES-GCM)',
  run,
};

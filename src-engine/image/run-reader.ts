// Reads runs of regions from a volume's snapshot through the AgentApi, in order, with the next
// few runs' streams already started: a half-sparse volume is many short runs, and over SSH each
// stream costs a round trip that must not be paid one run after another.

import type { AgentApi, RegionData } from '../agent';
import { assert } from '../assert';
import type { BitRun } from '../bitmap';

const runsAhead = 8;

interface StartedRun {
  readonly run: BitRun;
  readonly iterator: AsyncIterator<RegionData>;
  readonly first: Promise<IteratorResult<RegionData>>;
}

export interface RunReadOptions {
  readonly snapshotId: string;
  readonly signal?: AbortSignal;
}

/** Every region of `runs` (ascending, disjoint), in order. */
export async function* readRuns(agent: AgentApi, path: string, runs: Iterable<BitRun>, options: RunReadOptions): AsyncGenerator<RegionData> {
  const pending = runs[Symbol.iterator]();
  const started: StartedRun[] = [];
  const startMore = () => {
    while (started.length < runsAhead) {
      const next = pending.next();
      if (next.done) return;
      const run = next.value;
      const iterator = agent.readRegions(path, run.start, run.end - run.start, options)[Symbol.asyncIterator]();
      const first = iterator.next();
      first.catch(() => undefined); // awaited in turn below
      started.push({ run, iterator, first });
    }
  };
  try {
    for (startMore(); started.length > 0; startMore()) {
      const { run, iterator, first } = started[0]!;
      let expected = run.start;
      for (let result = await first; !result.done; result = await iterator.next()) {
        assert(result.value.regionIndex === expected, `region ${expected} comes in order (got ${result.value.regionIndex})`);
        expected += 1;
        yield result.value;
      }
      assert(expected === run.end, `every region of [${run.start}, ${run.end}) was read`);
      started.shift();
    }
  } finally {
    // Streams started ahead and not consumed are closed (their reads stop).
    await Promise.allSettled(started.map((s) => s.first.then(() => s.iterator.return?.())));
  }
}

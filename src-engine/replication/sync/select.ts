// Round 0's selection per method, window by window over the extent: which regions the pass
// sends. full/tardy/early: every region (the primary's realized ones when the secondary is
// known empty); signature (seed 001, embodiment 1): the regions whose signatures differ;
// realized (seed 001, embodiment 2): the four cases, reclaiming secondary-only regions here.

import { Bitset, type BitRun } from '../../bitmap';
import type { WriteAuth } from '../../agent';
import { signatureBytes, type HashAlgorithm } from '../../signature';
import type { VolumeEndpoint } from '../endpoints';
import type { SyncMethod } from './cursor';

/** Regions per selection window: signatures of the next window are fetched while this one is sent. */
export const selectionWindowRegions = 16_384;

export interface SelectionWindow {
  readonly start: number;
  /** One past the window's last region: the pass is done up to here once the runs are sent. */
  readonly end: number;
  readonly runs: readonly BitRun[];
}

export interface Selection {
  windows(from: number): AsyncIterable<SelectionWindow>;
}

export interface SelectionContext {
  readonly method: SyncMethod;
  readonly sparse: boolean;
  readonly primary: VolumeEndpoint;
  readonly secondary: VolumeEndpoint;
  readonly hash: HashAlgorithm;
  readonly regionCount: number;
  readonly signal: AbortSignal | undefined;
  readonly auth: WriteAuth;
  readonly onSignatures: (regions: number, bytes: number) => void;
  readonly onReclaimed: (regions: number) => void;
}

/** A map's bits over the pair's extent (a larger secondary's regions beyond it are never looked at). */
function extentBits(map: { regionCount: number; words: Uint32Array }, regionCount: number): Bitset {
  const bits = new Bitset(regionCount);
  bits.copyWordsFrom(map.words.subarray(0, Math.ceil(regionCount / 32)), 0);
  return bits;
}

export async function selectRegions(ctx: SelectionContext): Promise<Selection> {
  switch (ctx.method) {
    case 'full':
    case 'tardy':
    case 'early':
      return ctx.sparse ? bitsSelection(ctx, extentBits(await ctx.primary.agent.realizedMap(ctx.primary.path), ctx.regionCount)) : everyRegion(ctx);
    case 'signature':
      return signatureSelection(ctx, undefined);
    case 'realized':
      return realizedSelection(ctx);
  }
}

function* windowStarts(from: number, regionCount: number): Generator<{ start: number; end: number }> {
  for (let start = from; start < regionCount; start = Math.min(regionCount, start + selectionWindowRegions)) {
    yield { start, end: Math.min(regionCount, start + selectionWindowRegions) };
  }
}

function everyRegion(ctx: SelectionContext): Selection {
  return {
    async *windows(from) {
      for (const { start, end } of windowStarts(from, ctx.regionCount)) yield { start, end, runs: [{ start, end }] };
    },
  };
}

function bitsSelection(ctx: SelectionContext, bits: Bitset): Selection {
  return {
    async *windows(from) {
      for (const { start, end } of windowStarts(from, ctx.regionCount)) yield { start, end, runs: [...bits.runs(start, end)] };
    },
  };
}

/** Signatures of regions [start, end) of one side, by region. */
async function signaturesOf(ctx: SelectionContext, side: VolumeEndpoint, start: number, end: number): Promise<Uint8Array[]> {
  const bytes = signatureBytes(ctx.hash);
  const signatures: Uint8Array[] = new Array<Uint8Array>(end - start);
  for await (const batch of side.agent.signatures(side.path, ctx.hash, start, end - start, { signal: ctx.signal })) {
    batch.regionIndexes.forEach((r, i) => (signatures[r - start] = batch.signatures.subarray(i * bytes, (i + 1) * bytes)));
  }
  return signatures;
}

/**
 * Both sides sign a window in parallel (each on its own workers); regions whose signatures
 * differ are selected. Only signatures cross to the orchestrator: 16 B a region for xxh3-128.
 * `only`: sign just these runs, and select only regions it accepts (realized: the
 * both-realized ones; its runs bridge short gaps, whose regions are never selected here).
 */
interface SignedSubset {
  runs(start: number, end: number): BitRun[];
  accepts(regionIndex: number): boolean;
}

function signatureSelection(ctx: SelectionContext, only: SignedSubset | undefined): Selection {
  const compareWindow = async (start: number, end: number): Promise<SelectionWindow> => {
    const runs = only ? only.runs(start, end) : [{ start, end }];
    const selected = new Bitset(end - start);
    for (const run of runs) {
      const [p, s] = await Promise.all([signaturesOf(ctx, ctx.primary, run.start, run.end), signaturesOf(ctx, ctx.secondary, run.start, run.end)]);
      const count = run.end - run.start;
      ctx.onSignatures(count, 2 * count * signatureBytes(ctx.hash));
      for (let i = 0; i < count; i++) {
        if ((!only || only.accepts(run.start + i)) && Buffer.compare(p[i]!, s[i]!) !== 0) selected.set(run.start + i - start);
      }
    }
    return { start, end, runs: [...selected.runs()].map((r) => ({ start: r.start + start, end: r.end + start })) };
  };
  return {
    async *windows(from) {
      const starts = [...windowStarts(from, ctx.regionCount)];
      let next = starts.length > 0 ? compareWindow(starts[0]!.start, starts[0]!.end) : undefined;
      for (let w = 0; w < starts.length; w++) {
        const current = next!;
        current.catch(() => undefined);
        const following = starts[w + 1];
        next = following ? compareWindow(following.start, following.end) : undefined; // prefetched while this window is sent
        next?.catch(() => undefined);
        yield await current;
      }
    },
  };
}

/**
 * Seed 001 embodiment 2, per region: both realized → compare signatures; only the primary →
 * send; only the secondary → reclaim on the secondary; neither → skip.
 */
async function realizedSelection(ctx: SelectionContext): Promise<Selection> {
  const [pMap, sMap] = await Promise.all([ctx.primary.agent.realizedMap(ctx.primary.path), ctx.secondary.agent.realizedMap(ctx.secondary.path)]);
  const p = extentBits(pMap, ctx.regionCount);
  const s = extentBits(sMap, ctx.regionCount);
  const both = (start: number, end: number): BitRun[] => {
    const runs: BitRun[] = [];
    for (let r = start; r < end; r++) {
      if (!(p.get(r) && s.get(r))) continue;
      const last = runs.at(-1);
      if (last && r - last.end < 64) runs[runs.length - 1] = { start: last.start, end: r + 1 };
      else runs.push({ start: r, end: r + 1 });
    }
    return runs;
  };
  const compared = signatureSelection(ctx, { runs: both, accepts: (r) => p.get(r) && s.get(r) });
  return {
    async *windows(from) {
      for await (const window of compared.windows(from)) {
        const { start } = window;
        const selected = new Bitset(window.end - start);
        for (const run of window.runs) selected.setRange(run.start - start, run.end - start);
        for (let r = start; r < window.end; r++) if (p.get(r) && !s.get(r)) selected.set(r - start);
        await reclaimSecondaryOnly(ctx, p, s, start, window.end);
        yield { start, end: window.end, runs: [...selected.runs()].map((run) => ({ start: run.start + start, end: run.end + start })) };
      }
    },
  };
}

async function reclaimSecondaryOnly(ctx: SelectionContext, p: Bitset, s: Bitset, start: number, end: number): Promise<void> {
  const secondaryOnly = s.clone();
  secondaryOnly.subtract(p);
  let reclaimed = 0;
  for (const run of secondaryOnly.runs(start, end)) {
    await ctx.secondary.agent.reclaimRegions(ctx.secondary.path, run.start, run.end - run.start, { auth: ctx.auth });
    ctx.onReclaimed(run.end - run.start);
    reclaimed += run.end - run.start;
  }
  // Durable before the cursor passes the window (a commit flushes only when regions were written).
  if (reclaimed > 0) await ctx.secondary.agent.flush(ctx.secondary.path);
}

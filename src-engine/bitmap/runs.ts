// Sorted region indexes as runs: what readRegions and the reports want.

/** Sorted region indexes as runs [first, count]. */
export function runsOf(regions: readonly number[]): [number, number][] {
  const runs: [number, number][] = [];
  for (const r of regions) {
    const last = runs[runs.length - 1];
    if (last && last[0] + last[1] === r) last[1] += 1;
    else runs.push([r, 1]);
  }
  return runs;
}

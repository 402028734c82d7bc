// Seeds every random source of the test run. Set TIDEMARK_TEST_SEED to replay a failure;
// the seed is printed once per test file so a failing run names it.
import fc from 'fast-check';

export const testSeed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261123);
fc.configureGlobal({ seed: testSeed, numRuns: Number(process.env.TIDEMARK_TEST_RUNS ?? 100) });
if (!(globalThis as { __seedPrinted?: boolean }).__seedPrinted) {
  (globalThis as { __seedPrinted?: boolean }).__seedPrinted = true;
  console.log(`[tidemark tests] fast-check seed ${testSeed} (replay with TIDEMARK_TEST_SEED=${testSeed})`);
}

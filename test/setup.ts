// Seeds every random source of the test run. Set TIDEMARK_TEST_SEED to replay a failure;
// the seed is printed once per test file so a failing run names it.
import fc from 'fast-check';

export const testSeed = Number(process.env.TIDEMARK_TEST_SEED ?? 20261123);
fc.configureGlobal({ seed: testSeed, numRuns: Number(process.env.TIDEMARK_TEST_RUNS ?? 100) });
if (!(globalThis as { __seedPrinted?: boolean }).__seedPrinted) {
  (globalThis as { __seedPrinted?: boolean }).__seedPrinted = true;
  console.log(`[tidemark tests] fast-check seed ${testSeed} (replay with TIDEMARK_TEST_SEED=${testSeed})`);
}

// Component tests (happy-dom): the renderer's async updates get 30 s, not testing-library's 1 s
// default — MUI renders many times slower while the rest of the suite loads both cores (a
// wizard step that takes 0.9 s alone took over 1 s, then over 10 s, in loaded CI runs). A
// check still fails when the element never comes; it only waits longer for one that is slow.
if (typeof document !== 'undefined') {
  const { configure } = await import('@testing-library/dom');
  configure({ asyncUtilTimeout: 30_000 });
}

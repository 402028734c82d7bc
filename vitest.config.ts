import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'test/**/*.test.tsx'],
    setupFiles: ['test/setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // expect.poll waits up to 15 s, not 1 s: a Chromium page or an agent answers many times
    // slower while the rest of the suite loads both cores (a console page took over 1 s to drop
    // its token from the address bar in a loaded CI run). A poll still fails when the value
    // never comes; it only waits longer for one that is slow.
    expect: { poll: { timeout: 15_000 } },
    // After-hooks in reverse order of registration (vitest's default, pinned): test/helpers/tmp.ts
    // removes a file's shared temp dirs in an afterAll registered first, so it runs last.
    sequence: { hooks: 'stack' },
    reporters: ['default', './test/reporters/summary.ts'],
  },
});

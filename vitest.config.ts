import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Native work is CPU-bound on a 2-core machine: run test files one at a time
    // so timings and thread counts stay sane.
    fileParallelism: false,
  },
});

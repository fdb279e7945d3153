import { resolve } from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Native work is CPU-bound on a 2-core machine: run test files one at a time
    // so timings and thread counts stay sane.
    fileParallelism: false,
    // Tests load the dev addon (the shipped exports plus the `dev` test hooks; built by
    // `npm run build:native`, i.e. cmake -DMENTOR_KD_DEV=ON). Child processes inherit it.
    env: { MENTOR_KD_NATIVE: process.env.MENTOR_KD_NATIVE ?? resolve(import.meta.dirname, 'build/Release/mentor_kd_dev.node') },
  },
});

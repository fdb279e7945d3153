/**
 * CPU tensors of 16 MiB or more are mapped on their own and unmapped when freed
 * (native/runtime/large_block_allocator.h), so that under bin/mentor-kd's malloc settings (one
 * arena, never trimmed) a freed large tensor does not stay resident as a hole in the heap.
 * Each case runs in a child process with those settings: the allocator is installed at load.
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(__dirname, '..');
const CLI_MALLOC = { MALLOC_ARENA_MAX: '1', MALLOC_MMAP_THRESHOLD_: '4294967295', MALLOC_TRIM_THRESHOLD_: '4294967295' };
const MIB = 1024;

interface Probe {
  largeBlocks: boolean;
  probes: { bytes: number; aligned2MiB: boolean; sum: number; rssWhileLiveKb: number; rssAfterFreeKb: number }[];
}

function probeInChild(env: Record<string, string>): Probe {
  const script =
    "import('./lib/native/loader.ts').then((m) => { const n = m.devNative(); const probes = [64 << 20, 8 << 20].map((bytes) => ({ bytes, ...n.dev.largeBlockProbe(bytes) })); console.log(JSON.stringify({ largeBlocks: n.runtime.info().largeBlocks, probes })); })";
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: root, env: { ...process.env, ...CLI_MALLOC, ...env }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Probe;
}

describe('large-block CPU allocator', () => {
  it('maps a 64 MiB tensor 2 MiB-aligned and gives it back when freed; smaller tensors stay on the heap', () => {
    const on = probeInChild({});
    expect(on.largeBlocks).toBe(true);
    const [large, small] = on.probes;
    expect(large!.sum).toBe((64 << 20) / 4); // every element written and read back
    expect(large!.aligned2MiB).toBe(true);
    // Resident while it lives (every page written), and gone once freed.
    expect(large!.rssWhileLiveKb - large!.rssAfterFreeKb).toBeGreaterThan(60 * MIB);
    expect(small!.sum).toBe((8 << 20) / 4);
    // 8 MiB comes from the never-trimmed heap: still resident after it is freed.
    expect(small!.rssWhileLiveKb - small!.rssAfterFreeKb).toBeLessThan(1 * MIB);
  });

  it('MENTOR_KD_LARGE_BLOCKS=0 leaves every tensor to malloc (the freed 64 MiB stays resident in the heap)', () => {
    const off = probeInChild({ MENTOR_KD_LARGE_BLOCKS: '0' });
    expect(off.largeBlocks).toBe(false);
    const [large] = off.probes;
    expect(large!.sum).toBe((64 << 20) / 4);
    expect(large!.rssWhileLiveKb - large!.rssAfterFreeKb).toBeLessThan(1 * MIB);
  });
});

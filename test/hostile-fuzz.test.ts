/**
 * A short run of the TypeScript loader fuzz targets (scripts/fuzz/targets.ts): the YAML/JSON config
 * loader, the task file loaders and the tokenizer files. Any input gives a result or the loader's
 * own Error naming the file (or field) — no other exception type, no hang. In a child process
 * under a time limit, so a hang fails the test instead of stalling the suite.
 * `npm run fuzz -- <seconds>` runs the same targets longer (plus the native libFuzzer targets).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fuzzTarget, mutate, TARGET_NAMES } from '../scripts/fuzz/targets.js';

const work = mkdtempSync(join(tmpdir(), 'mentor-kd-hostile-fuzz-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('loader fuzzing', () => {
  it('the mutator is seeded: the same seed gives the same inputs', () => {
    const run = (seed: number) => {
      let a = seed;
      const r = () => (a = (a * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      let b: Buffer = Buffer.from('{"input": "q", "answer": "1"}');
      const out: string[] = [];
      for (let i = 0; i < 50; i++) out.push((b = mutate(b, r)).toString('hex'));
      return out;
    };
    expect(run(3)).toEqual(run(3));
    expect(run(3)).not.toEqual(run(4));
  });

  it('a fixed number of inputs per target in process: no failure', async () => {
    for (const name of TARGET_NAMES) {
      const s = await fuzzTarget(name, { seconds: 20, maxRuns: 150, seed: 20261205, dir: work, slowMs: 5000 });
      expect(
        s.failures.map((f) => `${f.reason}\n${f.input.toString('utf8').slice(0, 200)}`),
        name,
      ).toEqual([]);
      expect(s.runs).toBe(150);
      expect(s.refused, name).toBeGreaterThan(0);
    }
  });

  it('scripts/fuzz/ts-fuzz.ts runs each target for the given seconds and finds nothing (a hang would be killed)', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/fuzz/ts-fuzz.ts', '2', '7'], { encoding: 'utf8', timeout: 90_000 });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stdout + r.stderr).toBe(0);
    for (const name of TARGET_NAMES) expect(r.stdout).toMatch(new RegExp(`fuzz: ts:${name} for 2s \\(seed 7\\)\\n  \\d+ runs .* 0 failures`));
  });
});

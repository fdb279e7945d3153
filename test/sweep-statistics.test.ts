/**
 * The sweep over tasks with compute-matched baselines and statistics: each baseline is trained for
 * mentor-kd's optimizer steps at the same seed (its own stage beside the unmatched one), and the
 * tables give tasks × methods with mean ± sd and paired differences against the baseline — the
 * numbers recomputed here from the per-seed accuracies the stages recorded.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { StageManifest } from '../lib/pipeline/run-dir.js';
import { pairedDifference } from '../lib/pipeline/statistics.js';
import { parseIntegerList, parseTaskList, runSweep } from '../lib/pipeline/sweep.js';
import type { SweepTable } from '../lib/pipeline/sweep-tables.js';
import { microConfig } from './helpers/micro-config.js';

const root = mkdtempSync(join(tmpdir(), 'mentor-kd-sweep-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const manifest = (dir: string, stage: string) =>
  JSON.parse(readFileSync(join(dir, 'stages', stage, 'manifest.json'), 'utf8')) as StageManifest<Record<string, number>>;

describe('sweep flags', () => {
  it('parses seed ranges and task lists, refusing bad ones', () => {
    expect(parseIntegerList('0-4')).toEqual([0, 1, 2, 3, 4]);
    expect(parseIntegerList('0,2,5-6')).toEqual([0, 2, 5, 6]);
    expect(() => parseIntegerList('0-x')).toThrow(/--seeds: "0-x"/);
    expect(() => parseIntegerList('3-1')).toThrow(/empty/);
    expect(() => parseIntegerList('1,1')).toThrow(/repeats/);
    expect(parseTaskList('coin_flip,last_letter_concatenation')).toEqual(['coin_flip', 'last_letter_concatenation']);
    expect(() => parseTaskList('coin_flip,lastletter')).toThrow(/unknown task "lastletter"/);
  });
});

describe('sweep: tasks, compute-matched baselines, statistics', () => {
  it('trains each baseline for mentor-kd steps per seed and tables the paired differences', { timeout: 900_000 }, async () => {
    const out = join(root, 'sweep');
    // mentor-kd trains two epochs to the baselines' one: the matched baselines must take its (larger) step count.
    const base = microConfig(out, (c) => (c.student.modeSettings = { 'mentor-kd': { train: { num_train_epochs: 2 } } }));
    const tasks = parseTaskList('coin_flip,last_letter_concatenation');
    const { cells } = await runSweep(
      base,
      { seeds: [0, 1], fractions: [1], mentorSamples: [1], modes: ['vanilla', 'mentor-kd'], tasks, computeMatched: 'also', baseline: 'vanilla' },
      { log: () => {} },
    );
    const matched = 'steps matched to mentor-kd';
    const acc: Record<string, Record<string, number[]>> = {};
    for (const task of tasks) {
      acc[task] = { vanilla: [], mentorKd: [], matched: [] };
      for (const seed of [0, 1]) {
        const dir = join(out, task, `seed-${seed}`);
        const steps = manifest(dir, 'student-mentor-kd-m1-epochs2').summary.steps!;
        // The matched vanilla took mentor-kd's steps (two epochs of at least vanilla's data: more than vanilla's own).
        const ownStage = readdirSync(join(dir, 'stages')).find((x) => x.startsWith('student-mentor-kd'))!;
        expect(ownStage).toBe('student-mentor-kd-m1-epochs2');
        expect(manifest(dir, `student-vanilla-steps${steps}`).summary.steps).toBe(steps);
        expect(manifest(dir, 'student-vanilla').summary.steps).toBeLessThan(steps);
        acc[task].vanilla!.push(manifest(dir, 'evaluate-student-vanilla').summary.accuracy!);
        acc[task].mentorKd!.push(manifest(dir, 'evaluate-student-mentor-kd-m1-epochs2').summary.accuracy!);
        acc[task].matched!.push(manifest(dir, `evaluate-student-vanilla-steps${steps}`).summary.accuracy!);
      }
      const cell = (mode: string, budget: string) => cells.find((c) => c.task === task && c.mode === mode && c.budget === budget)!;
      expect(cell('vanilla', '').accuracies).toEqual(acc[task].vanilla);
      expect(cell('vanilla', matched).accuracies).toEqual(acc[task].matched);
      expect(cell('vanilla', matched).seeds).toEqual([0, 1]);
      expect(cell('mentor-kd', '').accuracies).toEqual(acc[task].mentorKd);
      expect(cell('mentor', '').faithfulness.every((f) => typeof f === 'number' && f >= 0 && f <= 1)).toBe(true); // measured on its test rationales
    }
    const tables = JSON.parse(readFileSync(join(out, 'sweep', 'tables.json'), 'utf8')) as SweepTable[];
    expect(tables).toHaveLength(1);
    const t = tables[0]!;
    expect(t.baseline).toBe(`vanilla (${matched})`);
    expect(t.tasks).toEqual(tasks);
    expect(t.methods).toEqual(expect.arrayContaining(['mentor', 'vanilla', 'mentor-kd', `vanilla (${matched})`]));
    for (const task of tasks) {
      const d = t.differences.find((x) => x.task === task && x.method === 'mentor-kd')!;
      const expected = pairedDifference(acc[task]!.mentorKd!, acc[task]!.matched!);
      expect(d.n).toBe(2);
      expect(d.mean).toBeCloseTo(expected.mean, 12);
      expect(d.p).toEqual(expected.p);
    }
    const md = readFileSync(join(out, 'sweep', 'tables.md'), 'utf8');
    expect(md).toContain(`| method | coin_flip | last_letter_concatenation |`);
    expect(md).toContain(`Paired difference against vanilla (${matched})`);
    const report = readFileSync(join(out, 'sweep', 'report.md'), 'utf8');
    expect(report).toContain(`vanilla (${matched})`);
    expect(existsSync(join(out, 'sweep', 'sweep-differences-1.svg'))).toBe(true);
  });
});

/**
 * results.json's per-student `settings` line (lib/pipeline/results.ts), read back from the stage
 * manifests: a baseline's own settings are in it (mcc-kd's α and K, step-by-step's
 * rationale_weight) beside those every student has, from the very key material the stage records.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { collectStudents } from '../lib/pipeline/results.js';
import { RunDir } from '../lib/pipeline/run-dir.js';
import { baselineData } from '../lib/pipeline/stages/baselines.js';
import type { TrainStudentSummary } from '../lib/pipeline/stages/train-student.js';
import { microConfig } from './helpers/micro-config.js';

const root = mkdtempSync(join(tmpdir(), 'mentor-kd-results-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('results: each student’s settings', () => {
  it('names an mcc-kd student’s α and K and a step-by-step student’s rationale_weight', async () => {
    const c = microConfig(root, (x) => {
      x.student.modes = ['step-by-step', 'mcc-kd'];
      x.student.mccKd = { consistency_weight: 0.5, rationales_per_question: 2 };
      x.student.stepByStep = { rationale_weight: 0.25 };
    });
    const run = new RunDir(c.output_dir);
    const augment = { keptRows: [], manifest: { key: 'augment-key' } } as unknown as Parameters<typeof baselineData>[3];
    const summary = (mode: TrainStudentSummary['mode']): TrainStudentSummary => ({ mode, examples: 10, steps: 40, devAccuracy: 0.5, seconds: 1 });
    for (const mode of ['mcc-kd', 'step-by-step'] as const) {
      const b = baselineData(mode, c, [], augment, []);
      // The stage's key material as train-student.ts records it: the common part, then the baseline's.
      await run.stage(`student-${mode}${b.tag}`, { fraction: c.student.teacherFraction, mode, ...b.key }, async () => summary(mode));
    }
    const settings = Object.fromEntries(collectStudents(run, c).map((s) => [s.mode, s.settings]));
    expect(settings).toEqual({
      'mcc-kd': 'mcc-kd: α=0.5 (consistency_weight), K=2 rationales per question, 40 steps',
      'step-by-step': 'step-by-step: rationale_weight 0.25, 40 steps',
    });
  });
});

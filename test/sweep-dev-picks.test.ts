/**
 * Dev picks independent of the run's length: with `save_steps` a ratio (the demo's 0.1) a run of
 * 800 steps and one of 2000 are evaluated on dev — and so get a chance to become the best
 * checkpoint — the same number of times, where every-100-steps gave the longer run 20 picks to 8.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../lib/config/defaults.js';
import { trainSettingsSchema } from '../lib/config/train-settings.js';
import { evaluationSteps, saveInterval } from '../lib/train/evaluate.js';
import { train } from '../lib/train/trainer.js';
import { reversalTask, tinyModel, toyTokenizer } from './helpers/train-fixtures.js';

const root = mkdtempSync(join(tmpdir(), 'mentor-kd-dev-picks-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('dev evaluations per run', () => {
  it('a ratio gives the same number of evaluations for 800 and 2000 steps; a fixed interval does not', () => {
    const ratio = defaultConfig().student.train.save_steps;
    expect(ratio).toBe(0.1);
    expect(evaluationSteps(ratio!, 800)).toEqual([80, 160, 240, 320, 400, 480, 560, 640, 720, 800]);
    expect(evaluationSteps(ratio!, 2000)).toHaveLength(10);
    // mentor-kd's step counts are not round: still ten, the last at the end of the run.
    for (const n of [400, 950, 1720, 1735, 1900, 2040]) {
      const steps = evaluationSteps(ratio!, n);
      expect(steps).toHaveLength(10);
      expect(steps.at(-1)).toBe(n);
    }
    // The bias the ratio removes: every 100 steps, 8 picks against 20.
    expect([evaluationSteps(100, 800).length, evaluationSteps(100, 2000).length]).toEqual([8, 20]);
    expect(evaluationSteps(0, 800)).toEqual([800]);
    expect(saveInterval(0.1, 5)).toBe(1);
    expect(() => saveInterval(1.5, 10)).toThrow(/save_steps must be a non-negative integer or a ratio in \(0, 1\)/);
  });

  it('the settings accept a ratio or an integer and refuse anything else, naming save_steps', () => {
    expect(trainSettingsSchema.parse({ save_steps: 0.1 }).save_steps).toBe(0.1);
    expect(trainSettingsSchema.parse({ save_steps: 100 }).save_steps).toBe(100);
    for (const bad of [1.5, -0.1])
      expect(trainSettingsSchema.safeParse({ save_steps: bad }).error?.issues[0]).toMatchObject({
        path: ['save_steps'],
        message: `must be a non-negative integer or a ratio in (0, 1) of the total steps, got ${bad}`,
      });
  });

  it('train() evaluates a short and a 2.5x longer run the same number of times', { timeout: 300_000 }, async () => {
    const tokenizer = toyTokenizer();
    const data = reversalTask(32, 1);
    const dev = reversalTask(8, 2);
    const evaluated: number[][] = [];
    for (const max_steps of [16, 40]) {
      const model = await tinyModel({ vocabSize: tokenizer.vocabSize, seed: 3 });
      const r = await train({
        model,
        tokenizer,
        train: data,
        dev,
        output_dir: join(root, `steps-${max_steps}`),
        max_steps,
        save_steps: 0.25,
        save_total_limit: 1,
        per_device_train_batch_size: 8,
        learning_rate: 1e-3,
        eval: { maxNewTokens: 8 },
        progress: false,
        logger: () => {},
      });
      evaluated.push(r.evaluations.map((e) => e.step));
      // The best checkpoint is one of the evaluated ones.
      expect(r.evaluations.map((e) => e.checkpoint)).toContain(r.bestCheckpoint);
    }
    expect(evaluated).toEqual([
      [4, 8, 12, 16],
      [10, 20, 30, 40],
    ]);
  });
});

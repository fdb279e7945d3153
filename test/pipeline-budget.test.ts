/**
 * Per-mode training budgets (student.budget, student.modeSettings.<mode>.train) and results that
 * accumulate: stage names and keys change with a mode's own budget and not otherwise; every
 * student trained in a run directory is in results.json with its settings, across invocations
 * with different modes; each student is evaluated as soon as it is trained, so a failure in a
 * later student keeps the earlier ones' test results. Also: the environment in every manifest,
 * and the warning when a rerun uses another thread count.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { budgetKey, resolveBudget, stepsForTokens, studentBudget } from '../lib/pipeline/budget.js';
import { runPipeline, type PipelineResult } from '../lib/pipeline/pipeline.js';
import { hashKey, type StageManifest } from '../lib/pipeline/run-dir.js';
import { microConfig } from './helpers/micro-config.js';

const root = mkdtempSync(join(tmpdir(), 'mentor-kd-budget-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const manifest = (dir: string, stage: string) =>
  JSON.parse(readFileSync(join(dir, 'stages', stage, 'manifest.json'), 'utf8')) as StageManifest<Record<string, unknown>>;
const resultsFile = (dir: string) => JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as PipelineResult;
const quiet = { log: () => {} };

describe('per-mode budgets', () => {
  const base = microConfig(join(root, 'unused'));

  it('a mode without an override keeps the shared settings, stage name and key material', () => {
    for (const mode of base.student.modes) {
      const b = studentBudget(base, mode);
      expect(b).toMatchObject({ kind: 'epochs', tag: '', description: '' });
      expect(budgetKey(b)).toEqual({ train: base.student.train }); // what the key held before budgets existed
    }
  });

  it("a mode's own max_steps changes its name and key, not the other modes'", () => {
    const c = microConfig(join(root, 'unused'), (x) => {
      x.student.modeSettings = { vanilla: { train: { max_steps: 7 } } };
    });
    const v = studentBudget(c, 'vanilla');
    expect(v).toMatchObject({ tag: '-steps7', description: '7 steps' });
    expect(v.train).toEqual({ ...base.student.train, max_steps: 7 });
    expect(hashKey(budgetKey(v))).not.toBe(hashKey(budgetKey(studentBudget(base, 'vanilla'))));
    expect(budgetKey(studentBudget(c, 'mentor-kd'))).toEqual(budgetKey(studentBudget(base, 'mentor-kd')));
    // More epochs for one mode: named by its epochs.
    const e = microConfig(join(root, 'unused'), (x) => {
      x.student.modeSettings = { vanilla: { train: { num_train_epochs: 3 } } };
    });
    expect(studentBudget(e, 'vanilla')).toMatchObject({ tag: '-epochs3' });
  });

  it('budget steps and tokens name every student by its budget; tokens become steps from the data', () => {
    const s = microConfig(join(root, 'unused'), (x) => {
      x.student.budget = 'steps';
      x.student.train.max_steps = 20;
      x.student.modeSettings = { vanilla: { train: { max_steps: 40 } } };
    });
    expect(studentBudget(s, 'mentor-kd').tag).toBe('-steps20');
    expect(studentBudget(s, 'vanilla').tag).toBe('-steps40');
    const t = microConfig(join(root, 'unused'), (x) => {
      x.student.budget = 'tokens';
      x.student.targetTokens = 10_000;
    });
    const b = studentBudget(t, 'vanilla');
    expect(b).toMatchObject({ kind: 'tokens', tag: '-tokens10000', targetTokens: 10_000 });
    expect(budgetKey(b)).toMatchObject({ budget: 'tokens', targetTokens: 10_000 });
    // 10,000 tokens at 50 tokens per example and 8 examples per step: 25 steps.
    expect(stepsForTokens(10_000, 50, 8)).toBe(25);
    expect(resolveBudget(b, () => 50, 1).max_steps).toBe(25);
    expect(resolveBudget(b, () => 50, 2).max_steps).toBe(13); // two ranks: 16 examples per step
  });

  it('refuses a budget without its quantity, naming the setting', () => {
    expect(() =>
      microConfig(join(root, 'unused'), (x) => {
        x.student.budget = 'steps';
      }),
    ).toThrow(/student\.modeSettings\.vanilla\.train\.max_steps.*budget steps needs max_steps/);
    expect(() =>
      microConfig(join(root, 'unused'), (x) => {
        x.student.budget = 'tokens';
      }),
    ).toThrow(/student\.targetTokens.*budget tokens needs targetTokens/);
    expect(() =>
      microConfig(join(root, 'unused'), (x) => {
        x.student.modeSettings = { vanila: { train: {} } } as never;
      }),
    ).toThrow(/modeSettings/);
    expect(() =>
      microConfig(join(root, 'unused'), (x) => {
        x.student.modeSettings = { vanilla: { train: { max_step: 3 } as never } };
      }),
    ).toThrow(/max_step/);
  });
});

describe('a tokens budget in the pipeline', () => {
  it('trains the steps that reach the token target, within one step of it', { timeout: 300_000 }, async () => {
    const dir = join(root, 'tokens');
    const r = await runPipeline(
      microConfig(dir, (x) => {
        x.student.modes = ['vanilla'];
        x.student.budget = 'tokens';
        x.student.targetTokens = 3000;
      }),
      quiet,
    );
    expect(r.students.map((s) => s.label)).toEqual(['vanilla (3000 tokens)']);
    const s = manifest(dir, 'student-vanilla-tokens3000').summary as { steps: number; tokens: number; budget: { train: { max_steps: number } } };
    expect(s.budget.train.max_steps).toBe(s.steps);
    expect(Math.abs(s.tokens - 3000)).toBeLessThanOrEqual(s.tokens / s.steps);
  });
});

describe('results accumulate in a run directory', () => {
  const dir = join(root, 'run');

  it(
    'keeps every student across invocations; per-mode budgets add students; a failing later student keeps earlier test results',
    { timeout: 600_000 },
    async () => {
      // 1: vanilla alone.
      const first = await runPipeline(
        microConfig(dir, (x) => (x.student.modes = ['vanilla'])),
        quiet,
      );
      expect(first.students.map((s) => s.label)).toEqual(['vanilla']);
      const vanillaKey = manifest(dir, 'student-vanilla').key;

      // 2: kd-only, and vanilla with its own step budget: a new stage beside the first vanilla, whose key is untouched.
      const second = await runPipeline(
        microConfig(dir, (x) => {
          x.student.modes = ['kd-only', 'vanilla'];
          x.student.modeSettings = { vanilla: { train: { max_steps: 6 } } };
        }),
        quiet,
      );
      expect(manifest(dir, 'student-vanilla').key).toBe(vanillaKey);
      expect(manifest(dir, 'student-vanilla-steps6').summary).toMatchObject({ steps: 6, label: 'vanilla (6 steps)' });
      expect(second.students.map((s) => [s.label, s.current])).toEqual([
        ['kd-only', true],
        ['vanilla (6 steps)', true],
        ['vanilla', false],
      ]);
      const saved = resultsFile(dir);
      expect(saved.students.map((s) => s.label)).toEqual(['kd-only', 'vanilla (6 steps)', 'vanilla']);
      for (const s of saved.students) {
        expect(s.testAccuracy).toBeGreaterThanOrEqual(0);
        expect(s.settings).toMatch(/steps/);
      }
      expect(saved.students[0]!.settings).toMatch(/λ=0\.3, τ=2, forward-kl/);
      expect(saved.students.find((s) => s.label === 'vanilla')!.testAccuracy).toBe(first.students[0]!.testAccuracy);

      // 3: augment-only trains and is evaluated; then mentor-kd fails in training (a learning rate that overflows):
      // augment-only's test result is already in results.json.
      await expect(
        runPipeline(
          microConfig(dir, (x) => {
            x.student.modes = ['augment-only', 'mentor-kd'];
            x.student.modeSettings = { 'mentor-kd': { train: { learning_rate: 1e30, max_grad_norm: 0 } } };
          }),
          quiet,
        ),
      ).rejects.toThrow(/non-finite|NaN|Inf/);
      const afterFailure = resultsFile(dir);
      const augment = afterFailure.students.find((s) => s.mode === 'augment-only')!;
      expect(augment.testAccuracy).toBe(manifest(dir, 'evaluate-student-augment-only-m1').summary.accuracy);
      expect(afterFailure.students.map((s) => s.label).sort()).toEqual(['augment-only', 'kd-only', 'vanilla', 'vanilla (6 steps)'].sort());
    },
  );

  it('records threads, CPU, libtorch and BLAS in every manifest, and warns when a rerun uses another thread count', async () => {
    for (const stage of readdirSync(join(dir, 'stages'))) {
      if (!readdirSync(join(dir, 'stages', stage)).includes('manifest.json')) continue;
      expect(manifest(dir, stage).environment, stage).toMatchObject({
        threads: 1,
        torchVersion: expect.any(String),
        blas: expect.any(String),
        cpuModel: expect.any(String),
      });
    }
    // An earlier invocation recorded 2 threads: this one (1 thread) is told results may differ.
    const env = JSON.parse(readFileSync(join(dir, 'environment.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, 'environment.json'), JSON.stringify({ ...env, threads: 2 }));
    const lines: string[] = [];
    const r = await runPipeline(
      microConfig(dir, (x) => (x.student.modes = ['vanilla'])),
      { log: (l) => lines.push(l) },
    );
    expect(lines.filter((l) => l.includes('results may differ'))).toEqual([expect.stringContaining('threads 1 (now) vs 2 (before)')]);
    expect(r.environment?.threads).toBe(1);
    expect(resultsFile(dir).environment).toMatchObject({ threads: 1 });
  });
});

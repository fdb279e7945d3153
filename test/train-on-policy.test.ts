/**
 * On-policy / mixed distillation (lib/train/on-policy.ts): the rows and samples are deterministic in
 * (seed, step), the samples come from the student as it is at the refresh, on-policy rows take the
 * divergence only (ceWeight 0 in the native step), fraction 0 is today's training bit for bit, and
 * a run interrupted mid-window resumes to the same per-step losses.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../lib/config/defaults.js';
import { mergeConfig, validateConfig } from '../lib/config/load.js';
import { T5Model } from '../lib/model/t5-model.js';
import { setNumThreads } from '../lib/native/index.js';
import { collate } from '../lib/train/batches.js';
import { tokenizeDataset } from '../lib/train/data.js';
import { TrainEngine } from '../lib/train/engine.js';
import { train, type TrainOptions } from '../lib/train/index.js';
import { ON_POLICY_FILE, onPolicyRows, onPolicySampleSeed, sampleTargets } from '../lib/train/on-policy.js';
import { runSweep, parseSweepObjective } from '../lib/pipeline/sweep.js';
import { tinyConfig as pipelineConfig } from './helpers/pipeline-config.js';
import { runStepChild } from './helpers/step-child.js';
import { ON_POLICY_RUN, reversalTask, tinyConfig, tinyModel, toyTokenizer } from './helpers/train-fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'mentor-kd-on-policy-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const tokenizer = toyTokenizer();
const V = tokenizer.vocabSize;
const data = reversalTask(40, 11);
let mentor: T5Model;

/** Every parameter's values, by name. */
const params = (m: T5Model): Record<string, number[]> => Object.fromEntries(m.parameterNames().map((n) => [n, Array.from(m.getParameter(n).data)]));

beforeAll(async () => {
  setNumThreads(2);
  mentor = await T5Model.fromConfig(tinyConfig({ vocabSize: V, dropout: 0 }), { seed: 9 });
});
afterAll(() => mentor?.dispose());

const runChild = (settings: Record<string, unknown>, killAtStep?: number) => runStepChild('on-policy-child.ts', settings, killAtStep);

/** A small mixed run; the student is fresh from the same seed every time. */
async function run(outputDir: string, extra: Partial<TrainOptions> = {}): Promise<{ losses: number[]; student: T5Model }> {
  const student = await tinyModel({ vocabSize: V, dModel: 32, dropout: 0.1, seed: 5 });
  const losses: number[] = [];
  await train({
    ...ON_POLICY_RUN,
    model: student,
    tokenizer,
    train: data,
    mentor,
    output_dir: outputDir,
    ...extra,
    onStep: async (log) => {
      losses.push(log.loss);
      await extra.onStep?.(log);
    },
  });
  return { losses, student };
}

describe('which rows and which samples', () => {
  it('picks floor(f·B) or ceil(f·B) rows, deterministically in (seed, step, micro-batch), with mean fraction f', () => {
    expect(onPolicyRows(8, 0, 1, 0, 0)).toEqual([]);
    expect(onPolicyRows(8, 1, 1, 0, 0)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(onPolicyRows(8, 0.5, 7, 3, 1)).toEqual(onPolicyRows(8, 0.5, 7, 3, 1));
    let total = 0;
    const seen = new Set<string>();
    for (let step = 0; step < 400; step++) {
      const rows = onPolicyRows(5, 0.3, 7, step, 0);
      expect(rows.length === 1 || rows.length === 2).toBe(true);
      total += rows.length;
      seen.add(rows.join(','));
    }
    expect(total / 400 / 5).toBeGreaterThan(0.27);
    expect(total / 400 / 5).toBeLessThan(0.33);
    expect(seen.size).toBeGreaterThan(10); // the rows vary with the step
  });

  it('samples through the engine from the given model, the same for the same seed, and not for another', async () => {
    const student = await tinyModel({ vocabSize: V, dModel: 32, dropout: 0, seed: 5 });
    const sources = tokenizeDataset(data.slice(0, 6), tokenizer, { maxSourceLength: 64, maxTargetLength: 16 }).examples.map((e) => e.sourceIds);
    const reqs = sources.map((sourceIds, i) => ({ sourceIds, seed: onPolicySampleSeed(123, 4, 0, i) }));
    const o = { temperature: 1, maxNewTokens: 12 };
    const a = await sampleTargets(student, reqs, o);
    expect(await sampleTargets(student, reqs, o)).toEqual(a);
    // One request alone gives what it gave among the others (seeded per request, not per batch).
    expect(await sampleTargets(student, [reqs[3]!], o)).toEqual([a[3]]);
    expect(a.every((t) => t.length >= 1 && t.length <= 12)).toBe(true);
    const reseeded = await sampleTargets(
      student,
      reqs.map((r) => ({ ...r, seed: r.seed + 1 })),
      o,
    );
    expect(reseeded).not.toEqual(a);
    student.dispose();
  });
});

describe('on-policy rows take the divergence only', () => {
  it('ceWeight 0: the loss is the hand composition (1-λ)·CE + λ·D over gold rows and λ·D over sampled rows, per step token', async () => {
    const student = await tinyModel({ vocabSize: V, dModel: 32, dropout: 0, seed: 5 });
    const lambda = 0.3;
    const engine = await TrainEngine.create(student, { learning_rate: 1e-3, seed: 1, mentor, lambda, tau: 2, divergence: 'jsd', beta: 0.5 });
    const ex = tokenizeDataset(data.slice(0, 6), tokenizer, { maxSourceLength: 64, maxTargetLength: 16 }).examples;
    const gold = collate(ex.slice(0, 3), tokenizer.padId);
    const sampled = collate(ex.slice(3), tokenizer.padId);
    const g = await engine.evaluateLoss([gold]);
    const s = await engine.evaluateLoss([sampled]);
    const mixed = await engine.evaluateLoss([gold, { ...sampled, ceWeight: 0 }]);
    const n = g.tokens + s.tokens;
    expect(mixed.tokens).toBe(n);
    const expected = ((1 - lambda) * g.ce * g.tokens + lambda * g.kl * g.tokens + lambda * s.kl * s.tokens) / n;
    expect(mixed.loss).toBeCloseTo(expected, 6);
    expect(mixed.ce).toBeCloseTo((g.ce * g.tokens) / n, 6); // the CE that counts: the gold rows' only
    expect(mixed.kl).toBeCloseTo((g.kl * g.tokens + s.kl * s.tokens) / n, 6);
    expect(s.ce).toBeGreaterThan(0); // so the composition above is not trivially satisfied
    // Above 1 is allowed (step-by-step's per-task means); negative is not.
    await expect(engine.evaluateLoss([{ ...gold, ceWeight: -0.5 }])).rejects.toThrow(/microBatches\[0\]\.ceWeight must be finite and >= 0, got -0\.5/);
    engine.dispose();
    student.dispose();
  });

  it('with λ = 0 an all-on-policy step has no loss and no gradient: the student does not move (no CE on its own samples)', async () => {
    const before = await tinyModel({ vocabSize: V, dModel: 32, dropout: 0, seed: 5 });
    const ref = await tinyModel({ vocabSize: V, dModel: 32, dropout: 0, seed: 5 });
    const r = await run(join(work, 'lambda0'), { kd: { lambda: 0 }, onPolicy: { fraction: 1, maxNewTokens: 8 }, max_steps: 2, model: before });
    expect(r.losses).toEqual([0, 0]);
    expect(params(before)).toEqual(params(ref));
    r.student.dispose();
    before.dispose();
    ref.dispose();
  });
});

describe('train() with onPolicy', () => {
  let full: number[] = [];

  it('fraction 0 is the run without onPolicy, bit for bit', async () => {
    const plain = await run(join(work, 'plain'));
    const zero = await run(join(work, 'zero'), { onPolicy: { fraction: 0, refreshEvery: 3 } });
    expect(zero.losses.length).toBe(8);
    for (let i = 0; i < 8; i++) expect(Object.is(zero.losses[i], plain.losses[i]), `step ${i + 1}`).toBe(true);
    expect(params(zero.student)).toEqual(params(plain.student));
    expect(existsSync(join(work, 'zero', 'checkpoint-8', ON_POLICY_FILE))).toBe(false);
    plain.student.dispose();
    zero.student.dispose();
    // and on-policy rows change the run
    const mixed = await run(join(work, 'mixed'), { onPolicy: { fraction: 0.5, refreshEvery: 2, maxNewTokens: 12 }, save_steps: 1, save_total_limit: 0 });
    expect(mixed.losses).not.toEqual(plain.losses);
    full = mixed.losses;
    mixed.student.dispose();
  });

  it("the samples are the current student's at the refresh step, from (seed, step) seeds", async () => {
    // refreshEvery 2: step index 3's samples were drawn at step index 2, i.e. by checkpoint-2's student.
    const file = JSON.parse(readFileSync(join(work, 'mixed', 'checkpoint-3', ON_POLICY_FILE), 'utf8')) as {
      pending: [number, number, number[], number[][]][];
    };
    expect(file.pending.map((p) => p[0])).toEqual([3, 3]); // both micro-batches of step index 3, nothing else
    const ex = tokenizeDataset(data, tokenizer, { maxSourceLength: 512, maxTargetLength: 16 }).examples;
    // Which examples those rows were: replay the data order of the run (step 3 = batches 6, 7).
    const { BatchStream } = await import('../lib/train/batches.js');
    const stream = new BatchStream(
      ex.map((e) => e.sourceIds.length + e.targetIds.length),
      { batchSize: 4, seed: 123, bucketBatches: 2 },
    );
    const batches = stream.peek(8).slice(6, 8);
    const atRefresh = await T5Model.load(join(work, 'mixed', 'checkpoint-2'));
    const earlier = await T5Model.load(join(work, 'mixed', 'checkpoint-1'));
    let differs = false;
    for (const [step, micro, rows, targets] of file.pending) {
      expect(rows).toEqual(onPolicyRows(batches[micro]!.indices.length, 0.5, 123, step, micro));
      const reqs = rows.map((row) => ({ sourceIds: ex[batches[micro]!.indices[row]!]!.sourceIds, seed: onPolicySampleSeed(123, step, micro, row) }));
      expect(await sampleTargets(atRefresh, reqs, { temperature: 1, maxNewTokens: 12 })).toEqual(targets);
      const old = await sampleTargets(earlier, reqs, { temperature: 1, maxNewTokens: 12 });
      if (JSON.stringify(old) !== JSON.stringify(targets)) differs = true;
    }
    expect(differs).toBe(true); // a stale student would have drawn other samples
    atRefresh.dispose();
    earlier.dispose();
  });

  it('a run interrupted mid-window (after checkpoint 3) resumes to the same per-step losses, bit for bit', async () => {
    expect(full.length).toBe(8);
    const dir = join(work, 'interrupted');
    const onPolicy = { fraction: 0.5, refreshEvery: 2, maxNewTokens: 12 };
    await expect(
      run(dir, {
        onPolicy,
        save_steps: 3,
        onStep: (log) => {
          if (log.step === 4) throw new Error('interrupted');
        },
      }),
    ).rejects.toThrow('interrupted');
    // checkpoint-3 is mid-window: step index 3's samples come from the checkpoint, not a new draw.
    const resumed = await run(dir, { onPolicy, save_steps: 3, resume_from_checkpoint: true });
    expect(resumed.losses.length).toBe(5);
    for (let i = 0; i < 5; i++) expect(Object.is(resumed.losses[i], full[3 + i]), `step ${4 + i}: ${resumed.losses[i]} vs ${full[3 + i]}`).toBe(true);
    resumed.student.dispose();
    // Other on-policy settings cannot resume it exactly, and say why.
    await expect(run(dir, { onPolicy: { ...onPolicy, fraction: 0.25 }, save_steps: 3, resume_from_checkpoint: join(dir, 'checkpoint-3') })).rejects.toThrow(
      /onPolicy\.fraction was 0\.5, now 0\.25/,
    );
  });

  it('a run SIGKILLed mid-window (after checkpoint 3) resumes to the losses of an uninterrupted one, bit for bit', async () => {
    const full = await runChild({ output_dir: join(work, 'child-full') });
    expect(full.code, full.stderr).toBe(0);
    expect(full.losses.size).toBe(8);
    const dir = join(work, 'child-killed');
    const killed = await runChild({ output_dir: dir, slowAfter: 3 }, 5);
    expect(killed.signal).toBe('SIGKILL');
    expect(existsSync(join(dir, 'checkpoint-3', ON_POLICY_FILE))).toBe(true);
    expect(existsSync(join(dir, 'checkpoint-6'))).toBe(false);
    const resumed = await runChild({ output_dir: dir, resume_from_checkpoint: true });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect([...resumed.losses.keys()]).toEqual([4, 5, 6, 7, 8]);
    for (const [step, loss] of resumed.losses) expect(Object.is(loss, full.losses.get(step)), `step ${step}: ${loss} vs ${full.losses.get(step)}`).toBe(true);
  }, 120_000);

  it('bad settings name the field', async () => {
    const student = await tinyModel({ vocabSize: V, seed: 5 });
    const base = { model: student, tokenizer, train: data, output_dir: join(work, 'bad'), max_steps: 1, progress: false, logger: () => {} };
    await expect(train({ ...base, mentor, onPolicy: { fraction: 1.5 } })).rejects.toThrow(/train: onPolicy: fraction must be in \[0, 1\], got 1\.5/);
    await expect(train({ ...base, mentor, onPolicy: { fraction: 0.5, refreshEvery: 0 } })).rejects.toThrow(
      /onPolicy: refreshEvery must be a positive integer, got 0/,
    );
    await expect(train({ ...base, mentor, onPolicy: { fracton: 0.5 } as never })).rejects.toThrow(/unknown option 'fracton'/);
    await expect(train({ ...base, onPolicy: { fraction: 0.5 } })).rejects.toThrow(/onPolicy\.fraction > 0 needs an online mentor/);
    student.dispose();
  });

  it('the run config: student.onPolicy defaults to off, is validated, and needs online soft labels', () => {
    const cfg = (student: Record<string, unknown>) => mergeConfig(defaultConfig(), { output_dir: join(work, 'cfg'), student });
    expect(validateConfig(cfg({})).student.onPolicy).toEqual({ fraction: 0, refreshEvery: 1 });
    expect(validateConfig(cfg({ onPolicy: { fraction: 0.5, refreshEvery: 4 } })).student.onPolicy).toEqual({ fraction: 0.5, refreshEvery: 4 });
    expect(() => validateConfig(cfg({ onPolicy: { fraction: 2 } }))).toThrow(/student\.onPolicy\.fraction: must be in \[0, 1\], got 2/);
    expect(() => validateConfig(cfg({ onPolicy: { fraction: 0.5 }, softLabels: 'offline' }))).toThrow(
      /student\.onPolicy\.fraction: needs student\.softLabels: online/,
    );
  });
});

describe('pipeline: student.onPolicy and a sweep over objectives', () => {
  it('parses --objectives entries and names bad ones', () => {
    expect(parseSweepObjective('jsd:0.5')).toEqual({ divergence: 'jsd', coef: 0.5, onPolicy: 0 });
    expect(parseSweepObjective('forward-kl+on-policy:0.5')).toEqual({ divergence: 'forward-kl', onPolicy: 0.5 });
    expect(() => parseSweepObjective('kl')).toThrow(/"kl": the divergence must be one of forward-kl/);
    expect(() => parseSweepObjective('jsd:2')).toThrow(/beta must be in \[0, 1\], got 2/);
    expect(() => parseSweepObjective('tvd:0.1')).toThrow(/tvd takes no parameter/);
    expect(() => parseSweepObjective('reverse-kl+on-policy:1.5')).toThrow(/\+on-policy:<fraction in \[0, 1\]>/);
  });

  it('a sweep trains the KD mode once per objective (its own stage), vanilla once, and tables each objective', async () => {
    const c = pipelineConfig(join(work, 'sweep'));
    c.mentor.train.num_train_epochs = 2;
    c.student.train.num_train_epochs = 2;
    c.student.train.save_steps = 0;
    c.augment.maxNewTokens = 24;
    c.evaluate.maxNewTokens = 24;
    const base = validateConfig(c);
    const objectives = [parseSweepObjective('forward-kl'), parseSweepObjective('jsd:0.5'), parseSweepObjective('forward-kl+on-policy:0.5')];
    const { cells, report } = await runSweep(
      base,
      { seeds: [0], fractions: [1], mentorSamples: [1], modes: ['vanilla', 'kd-only'], objectives },
      { log: () => {} },
    );
    const stages = readdirSync(join(work, 'sweep', 'seed-0', 'stages')).filter((d) => d.startsWith('student-'));
    expect(stages.sort()).toEqual(['student-kd-only', 'student-kd-only-jsd0.5', 'student-kd-only-op0.5', 'student-vanilla']);
    // The on-policy stage trained with the student's samples (its last checkpoint holds the sampler's state).
    const train = join(work, 'sweep', 'seed-0', 'stages', 'student-kd-only-op0.5', 'train');
    const last = readdirSync(train).filter((d) => d.startsWith('checkpoint-'));
    expect(last.length).toBeGreaterThan(0);
    expect(existsSync(join(train, last[0]!, ON_POLICY_FILE))).toBe(true);
    expect(cells.map((x) => `${x.mode}|${x.objective}`).sort()).toEqual([
      'kd-only|forward-kl',
      'kd-only|forward-kl, on-policy 50% of rows (resampled every 1 step)',
      'kd-only|jsd(β=0.5)',
      'mentor|',
      'vanilla|',
    ]);
    const md = readFileSync(report.markdown, 'utf8');
    expect(md).toContain('kd-only, jsd(β=0.5)');
    expect(md).toContain('kd-only, forward-kl, on-policy 50% of rows');
  }, 600_000);
});

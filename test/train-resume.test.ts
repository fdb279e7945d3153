/**
 * Exact resume: a run SIGKILLed after a checkpoint and resumed gives bit-identical per-step losses
 * to an uninterrupted run (dropout on, gradient accumulation, cosine schedule, several epochs).
 * Plus the failure paths around checkpoints: another architecture, NaN loss, stale temporaries.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { T5Model } from '../lib/model/t5-model.js';
import { latestCheckpoint, listCheckpoints, pruneCheckpoints, readTrainerState, train, TrainingStoppedError } from '../lib/train/index.js';
import { runStepChild } from './helpers/step-child.js';
import { reversalTask, tinyModel, toyTokenizer } from './helpers/train-fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'mentor-kd-resume-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const runChild = (settings: Record<string, unknown>, killAtStep?: number) => runStepChild('train-child.ts', settings, killAtStep);

describe('kill and resume', () => {
  let fullLosses = new Map<number, number>();

  it('a run killed with SIGKILL after checkpoint 12 resumes to the same per-step losses, bit for bit', async () => {
    const steps = 24;
    const full = await runChild({ output_dir: join(work, 'full'), max_steps: steps, save_steps: 6 });
    expect(full.code, full.stderr).toBe(0);
    expect(full.losses.size).toBe(steps);
    fullLosses = full.losses;

    const dir = join(work, 'killed');
    // Killed at step 14: checkpoint-12 is on disk, steps 13-14 are lost with the process.
    const killed = await runChild({ output_dir: dir, max_steps: steps, save_steps: 6, slowAfter: 12 }, 14);
    expect(killed.signal).toBe('SIGKILL');
    expect((await listCheckpoints(dir)).map((c) => c.step)).toEqual([6, 12]);
    for (let s = 1; s <= 12; s++) expect(Object.is(killed.losses.get(s), full.losses.get(s)), `step ${s}`).toBe(true);

    const resumed = await runChild({ output_dir: dir, max_steps: steps, save_steps: 6, resume_from_checkpoint: true });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect([...resumed.losses.keys()]).toEqual(Array.from({ length: steps - 12 }, (_, i) => 13 + i));
    for (const [s, loss] of resumed.losses) expect(Object.is(loss, full.losses.get(s)), `step ${s}: ${loss} vs ${full.losses.get(s)}`).toBe(true);

    // The state says where the data stream stood; the final checkpoint matches the full run's.
    const state = await readTrainerState(join(dir, 'checkpoint-24'));
    const fullState = await readTrainerState(join(work, 'full', 'checkpoint-24'));
    expect(state.data_position).toEqual(fullState.data_position);
    expect(state.global_step).toBe(24);
    const weights = (d: string) => readFileSync(join(d, 'checkpoint-24', 'model.safetensors'));
    expect(weights(dir).equals(weights(join(work, 'full')))).toBe(true);
  }, 60_000);

  it('the restored RNG state matters: resuming with another dropout state changes the losses', async () => {
    const dir = join(work, 'wrong-rng');
    mkdirSync(dir);
    const src = join(work, 'killed', 'checkpoint-12');
    const dst = join(dir, 'checkpoint-12');
    mkdirSync(dst);
    for (const f of readdirSync(src)) copyFileSync(join(src, f), join(dst, f));
    copyFileSync(join(work, 'full', 'checkpoint-6', 'rng_state.safetensors'), join(dst, 'rng_state.safetensors'));
    const run = await runChild({ output_dir: dir, max_steps: 24, save_steps: 6, resume_from_checkpoint: true, slowAfter: 12 }, 13);
    expect(run.signal).toBe('SIGKILL');
    // Same weights, optimizer and data at step 13; only the dropout masks differ.
    expect(fullLosses.get(13)).toBeDefined();
    expect(run.losses.get(13)).not.toBe(fullLosses.get(13));
    expect(Math.abs(run.losses.get(13)! - fullLosses.get(13)!)).toBeLessThan(1);
  }, 60_000);
});

describe('checkpoint failure paths', () => {
  const tokenizer = toyTokenizer();
  const data = reversalTask(16, 3);
  const base = { tokenizer, train: data, per_device_train_batch_size: 4, learning_rate: 1e-3, progress: false, logger: () => {} } as const;

  it('refuses to resume from a checkpoint of a different architecture, naming the field', async () => {
    const dir = join(work, 'arch');
    const small = await tinyModel({ vocabSize: tokenizer.vocabSize, dModel: 32 });
    await train({ ...base, model: small, output_dir: dir, max_steps: 2, save_steps: 2 });
    const wider = await tinyModel({ vocabSize: tokenizer.vocabSize, dModel: 48 });
    const before = wider.getParameter('shared.weight').data.slice();
    await expect(train({ ...base, model: wider, output_dir: dir, max_steps: 4, save_steps: 2, resume_from_checkpoint: true })).rejects.toThrow(
      /checkpoint-2: refusing a checkpoint of a different architecture: d_model is 32 in the checkpoint but 48 in the model being trained/,
    );
    // Nothing was loaded into the model.
    expect(wider.getParameter('shared.weight').data).toEqual(before);
  });

  it('stops on a NaN loss with a clear message and keeps the last good checkpoint', async () => {
    const dir = join(work, 'nan');
    const model = await tinyModel({ vocabSize: tokenizer.vocabSize, dModel: 32 });
    const name = 'decoder.block.0.layer.2.DenseReluDense.wo.weight';
    let err: unknown;
    try {
      await train({
        ...base,
        model,
        output_dir: dir,
        max_steps: 10,
        save_steps: 2,
        onStep: (log) => {
          // Corrupt a weight after step 5: step 6's loss is NaN.
          if (log.step === 5) {
            const p = model.getParameter(name);
            model.setParameter(name, { data: new Float32Array(p.data.length).fill(NaN), shape: p.shape });
          }
        },
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TrainingStoppedError);
    const stopped = err as TrainingStoppedError;
    expect(stopped.message).toMatch(/stopped at step 6: the loss is NaN/);
    expect(stopped.message).toContain(`last good checkpoint is ${join(dir, 'checkpoint-4')}`);
    expect(stopped.step).toBe(6);
    expect((await listCheckpoints(dir)).map((c) => c.step)).toEqual([2, 4]);
    // The kept checkpoint is sound: it loads and gives a finite loss.
    const good = await T5Model.load(join(dir, 'checkpoint-4'));
    const out = await good.forward({
      inputIds: { data: new Int32Array([5, 6, 7, 1]), shape: [1, 4] },
      labels: { data: new Int32Array([7, 6, 1]), shape: [1, 3] },
    });
    expect(Number.isFinite(out.loss)).toBe(true);
    const lines = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.at(-1)).toMatchObject({ event: 'stopped', step: 6 });
  });

  it('ignores a half-written checkpoint and removes stale temporaries when resuming', async () => {
    const dir = join(work, 'partial');
    const model = await tinyModel({ vocabSize: tokenizer.vocabSize, dModel: 32 });
    await train({ ...base, model, output_dir: dir, max_steps: 2, save_steps: 2 });
    // A crash mid-save leaves a temporary dir; a checkpoint dir without trainer_state.json is not complete.
    mkdirSync(join(dir, '.tmp-checkpoint-4-999'));
    writeFileSync(join(dir, '.tmp-checkpoint-4-999', 'model.safetensors'), 'partial');
    mkdirSync(join(dir, 'checkpoint-3'));
    expect(await latestCheckpoint(dir)).toBe(join(dir, 'checkpoint-2'));
    const again = await tinyModel({ vocabSize: tokenizer.vocabSize, dModel: 32 });
    const r = await train({ ...base, model: again, output_dir: dir, max_steps: 3, save_steps: 0, resume_from_checkpoint: true });
    expect(r.resumedFrom).toBe(join(dir, 'checkpoint-2'));
    expect(r.steps.map((s) => s.step)).toEqual([3]);
    expect(existsSync(join(dir, '.tmp-checkpoint-4-999'))).toBe(false);
  });

  it('refuses to resume on other data or another batch size', async () => {
    const dir = join(work, 'other-data');
    const model = await tinyModel({ vocabSize: tokenizer.vocabSize, dModel: 32 });
    await train({ ...base, model, output_dir: dir, max_steps: 2, save_steps: 2 });
    await expect(train({ ...base, model, train: reversalTask(16, 4), output_dir: dir, max_steps: 4, resume_from_checkpoint: true })).rejects.toThrow(
      /it was trained on other data/,
    );
    await expect(train({ ...base, model, per_device_train_batch_size: 2, output_dir: dir, max_steps: 4, resume_from_checkpoint: true })).rejects.toThrow(
      /batch_size was 4, now 2/,
    );
    await expect(train({ ...base, model, learning_rate: 2e-3, output_dir: dir, max_steps: 4, resume_from_checkpoint: true })).rejects.toThrow(
      /lr was 0.001, now 0.002/,
    );
    // A constant schedule may be extended: more steps, same lr.
    const more = await train({ ...base, model, output_dir: dir, max_steps: 3, resume_from_checkpoint: true });
    expect(more.steps.map((s) => s.step)).toEqual([3]);
    await expect(train({ ...base, model, output_dir: join(work, 'empty-dir'), max_steps: 4, resume_from_checkpoint: true })).rejects.toThrow(
      /holds no complete checkpoint/,
    );
  });
});

describe('checkpoint retention', () => {
  it('keeps the newest N and never deletes the best one', async () => {
    const dir = join(work, 'retention');
    for (const step of [10, 20, 30, 40]) {
      mkdirSync(join(dir, `checkpoint-${step}`), { recursive: true });
      writeFileSync(join(dir, `checkpoint-${step}`, 'trainer_state.json'), '{}');
    }
    const removed = await pruneCheckpoints(dir, 2, new Set([join(dir, 'checkpoint-10')]));
    expect(removed).toEqual([join(dir, 'checkpoint-20')]);
    expect((await listCheckpoints(dir)).map((c) => c.step)).toEqual([10, 30, 40]);
  });
});

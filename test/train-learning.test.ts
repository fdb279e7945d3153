/**
 * Real learning: a tiny T5 trained from scratch on sequence reversal until its loss is below a
 * stated bound and its greedy dev accuracy is far above chance; the best checkpoint is chosen on
 * dev and is an HF-loadable model directory that reproduces the accuracy it was chosen for.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readSafetensors } from '../lib/model/safetensors.js';
import { T5Model } from '../lib/model/t5-model.js';
import { Tokenizer } from '../lib/model/tokenizer.js';
import { evaluateGreedy, listCheckpoints, readTrainerState, tokenizeDataset, train } from '../lib/train/index.js';
import { LETTERS, reversalTask, tinyModel, toyTokenizer } from './helpers/train-fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'mentor-kd-learn-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

// Stated bounds. Chance: a guesser that knows the length gets a 3-5 letter reversal right with
// probability at most 8^-3 ≈ 0.2%.
const LOSS_BOUND = 0.3;
const ACCURACY_BOUND = 0.5;
const CHANCE = LETTERS.length ** -3;

describe('learning a toy seq2seq task', () => {
  it(`reverses letter sequences: loss < ${LOSS_BOUND}, dev accuracy > ${ACCURACY_BOUND} (chance ${CHANCE.toFixed(4)})`, async () => {
    const tokenizer = toyTokenizer();
    const model = await tinyModel({ vocabSize: tokenizer.vocabSize, dModel: 64, dropout: 0, seed: 1 });
    const dev = reversalTask(64, 2);
    const out = join(work, 'run');
    const r = await train({
      model,
      tokenizer,
      train: reversalTask(1024, 1),
      dev,
      output_dir: out,
      max_steps: 600,
      per_device_train_batch_size: 16,
      learning_rate: 3e-3,
      lr_scheduler_type: 'linear',
      warmup_steps: 30,
      seed: 7,
      save_steps: 200,
      save_total_limit: 1,
      eval: { maxNewTokens: 12 },
      progress: false,
    });
    const tail = r.steps.slice(-25);
    const tailLoss = tail.reduce((s, x) => s + x.loss, 0) / tail.length;
    const firstLoss = r.steps[0]!.loss;
    console.log(
      `reversal: loss ${firstLoss.toFixed(3)} -> ${tailLoss.toFixed(4)} (mean of last 25 steps); dev accuracy by checkpoint ${r.evaluations.map((e) => `${e.step}:${e.accuracy}`).join(' ')}`,
    );
    expect(tailLoss).toBeLessThan(LOSS_BOUND);
    expect(tailLoss).toBeLessThan(firstLoss / 20);
    const best = r.evaluations.reduce((a, b) => (b.accuracy > a.accuracy ? b : a));
    expect(best.accuracy).toBeGreaterThan(ACCURACY_BOUND);
    expect(best.accuracy).toBeGreaterThan(100 * CHANCE);

    // The best checkpoint is the dev argmax, kept by keep-last-N even when it is not the latest.
    expect(r.bestCheckpoint).toBe(best.checkpoint);
    expect(r.bestMetric).toBe(best.accuracy);
    const kept = (await listCheckpoints(out)).map((c) => c.dir);
    expect(kept).toContain(r.bestCheckpoint);
    expect(kept).toContain(r.lastCheckpoint);
    expect(kept.length).toBeLessThanOrEqual(2);

    // The checkpoint is a complete HF model dir plus trainer state; reloaded, it scores what it was chosen for.
    const dir = r.bestCheckpoint!;
    for (const f of [
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'tokenizer.json',
      'optimizer.safetensors',
      'rng_state.safetensors',
      'trainer_state.json',
    ]) {
      expect(existsSync(join(dir, f)), f).toBe(true);
    }
    expect(readdirSync(out).filter((n) => n.startsWith('.tmp'))).toEqual([]);
    const state = await readTrainerState(dir);
    expect(state.global_step).toBe(best.step);
    expect(state.best_checkpoint).toBe(dir);
    expect(state.schedule).toEqual({ kind: 'linear', lr: 3e-3, warmup_steps: 30, total_steps: 600 });
    const opt = await readSafetensors(join(dir, 'optimizer.safetensors'));
    expect(opt.metadata.global_step).toBe(String(best.step));
    expect(Object.keys(opt.tensors)).toContain('exp_avg_sq.lm_head.weight');
    const reloaded = await T5Model.load(dir);
    const reloadedTokenizer = await Tokenizer.load(dir);
    const devSet = tokenizeDataset(dev, reloadedTokenizer, { maxSourceLength: 512, maxTargetLength: 512, name: 'dev' });
    const again = await evaluateGreedy(reloaded, reloadedTokenizer, devSet.examples, { maxNewTokens: 12 });
    expect(again.accuracy).toBe(best.accuracy);
    const sample = again.predictions.find((p) => p.correct)!;
    expect(sample.text).toBe(sample.gold);

    const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(metrics.filter((m) => typeof m.eval_accuracy === 'number').map((m) => m.step)).toEqual([200, 400, 600]);
  }, 90_000);

  it('evaluation applies the given answer extractor and comparison', async () => {
    const tokenizer = toyTokenizer();
    const model = await tinyModel({ vocabSize: tokenizer.vocabSize });
    const ds = tokenizeDataset([{ source: 'reverse: a b', target: 'b a', answer: 'X' }], tokenizer, { maxSourceLength: 16, maxTargetLength: 16 });
    const r = await evaluateGreedy(model, tokenizer, ds.examples, { maxNewTokens: 4, extractAnswer: () => 'x', isCorrect: (p, g) => p === g.toLowerCase() });
    expect(r).toMatchObject({ accuracy: 1, correct: 1, total: 1 });
    expect(r.predictions[0]).toMatchObject({ answer: 'x', gold: 'X', correct: true });
  });
});

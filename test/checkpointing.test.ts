/**
 * Activation checkpointing (native/t5/checkpoint.cc): a checkpointed block is recomputed in
 * backward, drawing the same dropout masks, so losses and every gradient equal those of an
 * uncheckpointed run bit for bit (CPU, dropout on), through model.forward and through the trainer
 * (keyed dropout stream, gradient accumulation); bad settings are refused naming the field.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { manualSeed } from '../lib/native/index.js';
import { native } from '../lib/native/loader.js';
import { T5Model } from '../lib/model/t5-model.js';
import { collate, tokenizeDataset, train, TrainEngine, type CollatedBatch } from '../lib/train/index.js';
import type { ActivationCheckpointing } from '../lib/config/train-settings.js';
import { reversalTask, tinyConfig, tinyModel, toyTokenizer } from './helpers/train-fixtures.js';

const tokenizer = toyTokenizer();
const dataset = tokenizeDataset(reversalTask(16, 31, 2, 7), tokenizer, { maxSourceLength: 16, maxTargetLength: 16 });
const rows = (from: number, to: number): CollatedBatch => collate(dataset.examples.slice(from, to), tokenizer.padId);

const MODES: ActivationCheckpointing[] = ['blocks', 'every-2', 'every-3'];

/** Loss and every gradient of one training-mode forward/backward. */
async function lossAndGradients(model: T5Model, mode: ActivationCheckpointing): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
  model.zeroGrad();
  manualSeed(7);
  const r = await model.forward(rows(0, 4), { train: true, backward: true, activationCheckpointing: mode });
  const grads = new Map<string, Float32Array>();
  for (const n of model.parameterNames()) {
    const g = model.getGradient(n);
    if (g) grads.set(n, g.data.slice());
  }
  model.zeroGrad();
  return { loss: r.loss!, grads };
}

/** Names of the tensors whose bits differ (an empty list when all are equal). */
function differing(a: Map<string, Float32Array>, b: Map<string, Float32Array>): string[] {
  const names = new Set([...a.keys(), ...b.keys()]);
  const out: string[] = [];
  for (const n of names) {
    const x = a.get(n),
      y = b.get(n);
    if (!x || !y || x.length !== y.length) {
      out.push(n);
      continue;
    }
    const bx = new Uint32Array(x.buffer, x.byteOffset, x.length),
      by = new Uint32Array(y.buffer, y.byteOffset, y.length);
    if (bx.some((v, i) => v !== by[i])) out.push(n);
  }
  return out;
}

describe('activation checkpointing', () => {
  it('model.forward: the loss and every gradient are bitwise equal with and without, dropout on (gated and relu FF, tied and untied)', async () => {
    for (const variant of [
      { tied: false, layers: 3, ff: 'gated-gelu' },
      { tied: true, layers: 2, ff: 'relu' },
    ]) {
      const config = { ...tinyConfig({ vocabSize: 50, dropout: 0.3, tied: variant.tied, layers: variant.layers }), feed_forward_proj: variant.ff };
      const model = await T5Model.fromConfig(config, { seed: 3 });
      const ref = await lossAndGradients(model, 'none');
      // Every parameter got a gradient (the check below compares something real).
      expect(ref.grads.size).toBe(model.parameterNames().length);
      for (const mode of MODES) {
        const got = await lossAndGradients(model, mode);
        expect(got.loss, mode).toBe(ref.loss);
        expect(differing(ref.grads, got.grads), `${mode}, ${JSON.stringify(variant)}`).toEqual([]);
      }
      // Dropout is really on: another seed gives another loss.
      manualSeed(8);
      const other = await model.forward(rows(0, 4), { train: true });
      expect(other.loss).not.toBe(ref.loss);
      model.dispose();
    }
  });

  it('the checkpointed blocks really are recomputed in backward (softmax calls in a profile of forward + backward)', async () => {
    const model = await tinyModel({ vocabSize: 50, dropout: 0.3, seed: 3, layers: 3 });
    const dir = mkdtempSync(join(tmpdir(), 'mkd-ckpt-prof-'));
    const softmaxCalls = async (mode: ActivationCheckpointing): Promise<number> => {
      const file = join(dir, `${mode}.json`);
      native().runtime.configure({ modelProfile: file });
      try {
        await model.forward(rows(0, 4), { train: true, backward: true, activationCheckpointing: mode });
      } finally {
        native().runtime.configure({ modelProfile: '' });
        model.zeroGrad();
      }
      const events = JSON.parse(readFileSync(file, 'utf8')) as { traceEvents?: { name: string }[] } | { name: string }[];
      const list = Array.isArray(events) ? events : (events.traceEvents ?? []);
      return list.filter((e) => e.name === 'aten::softmax').length;
    };
    try {
      const none = await softmaxCalls('none');
      expect(none).toBe(3 + 2 * 3); // one per encoder block, two per decoder block
      expect(await softmaxCalls('blocks')).toBe(2 * none);
      expect(await softmaxCalls('every-2')).toBe(none + 2 + 2 * 2); // blocks 0 and 2 of each stack again
    } finally {
      model.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the trainer: losses, gradient norms and parameters after 3 accumulated steps are bitwise equal with and without (fp32 and bf16 autocast)', async () => {
    const run = async (mode: ActivationCheckpointing, bf16 = false) => {
      const model = await tinyModel({ vocabSize: 50, dropout: 0.2, seed: 5, layers: 3 });
      const engine = await TrainEngine.create(model, { learning_rate: 1e-3, seed: 11, activationCheckpointing: mode, bf16 });
      const steps = [];
      for (let s = 0; s < 3; s++) steps.push(await engine.step([rows(4 * s, 4 * s + 3), rows(4 * s + 3, 4 * s + 5)]));
      engine.dispose();
      const params = new Map(model.parameterNames().map((n) => [n, model.getParameter(n).data.slice()]));
      model.dispose();
      return { steps, params };
    };
    const ref = await run('none');
    // The trainer's steps do recompute: softmax calls in a profile of one step (2 micro-batches).
    const dir = mkdtempSync(join(tmpdir(), 'mkd-ckpt-train-'));
    const softmaxCalls = async (mode: ActivationCheckpointing): Promise<number> => {
      const model = await tinyModel({ vocabSize: 50, dropout: 0.2, seed: 5, layers: 3 });
      const engine = await TrainEngine.create(model, { learning_rate: 1e-3, seed: 11, activationCheckpointing: mode });
      const file = join(dir, `${mode}.json`);
      native().runtime.configure({ trainProfile: file });
      try {
        await engine.step([rows(0, 3), rows(3, 5)]);
      } finally {
        native().runtime.configure({ trainProfile: '' });
        engine.dispose();
        model.dispose();
      }
      const events = JSON.parse(readFileSync(file, 'utf8')) as { traceEvents?: { name: string }[] } | { name: string }[];
      return (Array.isArray(events) ? events : (events.traceEvents ?? [])).filter((e) => e.name === 'aten::softmax').length;
    };
    try {
      expect(await softmaxCalls('none')).toBe(2 * 9);
      expect(await softmaxCalls('blocks')).toBe(2 * 18);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // bf16 autocast: the recomputation runs under the autocast state of the first forward.
    const refBf16 = await run('none', true);
    const gotBf16 = await run('blocks', true);
    expect(gotBf16.steps.map((r) => r.loss)).toEqual(refBf16.steps.map((r) => r.loss));
    expect(differing(refBf16.params, gotBf16.params)).toEqual([]);
    expect(refBf16.steps[0]!.loss).not.toBe(ref.steps[0]!.loss); // autocast really ran in bf16
    for (const mode of ['blocks', 'every-2'] as const) {
      const got = await run(mode);
      expect(
        got.steps.map((r) => [r.loss, r.gradNorm]),
        mode,
      ).toEqual(ref.steps.map((r) => [r.loss, r.gradNorm]));
      expect(differing(ref.params, got.params), mode).toEqual([]);
    }
  });

  it('bad settings are refused naming the field, before any work', async () => {
    const model = await tinyModel({ vocabSize: 50, seed: 1 });
    const dir = mkdtempSync(join(tmpdir(), 'mkd-ckpt-'));
    try {
      for (const bad of ['every-0', 'all', 'every-x', 3]) {
        await expect(
          train({ model, tokenizer, train: reversalTask(4, 1, 2, 4), output_dir: dir, max_steps: 1, activationCheckpointing: bad as never }),
        ).rejects.toThrow(/train: activationCheckpointing must be none, blocks or every-<k> \(k >= 1\), got/);
      }
      await expect(model.forward(rows(0, 2), { train: true, backward: true, activationCheckpointing: 'every-0' as never })).rejects.toThrow(
        /activationCheckpointing' must be none, blocks or every-<k>/,
      );
      await expect(TrainEngine.create(model, { activationCheckpointing: 'sometimes' as never })).rejects.toThrow(
        /trainer: option 'activationCheckpointing' must be none, blocks or every-<k>/,
      );
    } finally {
      model.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * Parity with HF transformers on the reference fixtures (test/fixtures/t5-hf-reference, made by
 * HF 4.33.2 on PyTorch 1.13.1): logits, encoder states, loss, every parameter's gradient and the
 * greedy generations, at the tolerances the fixtures' README gives.
 */
import { describe, expect, it } from 'vitest';
import { T5Model } from '../lib/model/t5-model.js';
import { readSafetensors } from '../lib/model/safetensors.js';
import type { Tensor } from '../lib/model/tensor.js';
import { T5_CASES, fixtureDir, maxAbsDiff } from './helpers/fixtures.js';

describe.each(T5_CASES)('HF parity: %s', (name) => {
  it('matches logits, encoder states, loss, all gradients and greedy output', async () => {
    const dir = fixtureDir(name);
    const ref = (await readSafetensors(`${dir}/reference.safetensors`)).tensors as Record<string, Tensor>;
    const model = await T5Model.load(dir);
    try {
      const out = await model.forward(
        { inputIds: ref.input_ids!, attentionMask: ref.attention_mask!, labels: ref.labels! },
        { returnLogits: true, returnEncoderHidden: true, backward: true },
      );
      expect(out.logits!.shape).toEqual(ref.logits!.shape);
      expect(maxAbsDiff(out.logits!.data, ref.logits!.data as Float32Array)).toBeLessThan(5e-5);
      expect(maxAbsDiff(out.encoderHidden!.data, ref.encoder_hidden!.data as Float32Array)).toBeLessThan(1e-5);
      expect(Math.abs(out.loss! - (ref.loss!.data as Float32Array)[0]!)).toBeLessThan(1e-5);
      const labels = ref.labels!.data as Int32Array;
      expect(out.numLossTokens).toBe(labels.filter((x) => x !== -100).length);

      const names = model.parameterNames();
      const refGrads = Object.keys(ref)
        .filter((k) => k.startsWith('grad.'))
        .map((k) => k.slice(5));
      expect(new Set(names)).toEqual(new Set(refGrads));
      for (const n of names) {
        const g = model.getGradient(n);
        expect(g, n).not.toBeNull();
        expect(g!.shape, n).toEqual(ref[`grad.${n}`]!.shape);
        expect(maxAbsDiff(g!.data, ref[`grad.${n}`]!.data as Float32Array), n).toBeLessThan(1e-5);
      }

      // The decoder inputs HF built by shift-right give the same logits when passed explicitly.
      const explicit = await model.forward(
        { inputIds: ref.input_ids!, attentionMask: ref.attention_mask!, decoderInputIds: ref.decoder_input_ids! },
        { returnLogits: true },
      );
      expect(maxAbsDiff(explicit.logits!.data, out.logits!.data)).toBe(0);

      const gen = await model.generate({ inputIds: ref.input_ids!, attentionMask: ref.attention_mask! }, { maxNewTokens: 8 });
      expect(gen.shape).toEqual(ref.generated!.shape);
      expect(Array.from(gen.data)).toEqual(Array.from(ref.generated!.data as Int32Array));
    } finally {
      model.dispose();
    }
  });
});

describe('gradients', () => {
  it('accumulate across backward passes and reset with zeroGrad', async () => {
    const dir = fixtureDir(T5_CASES[0]);
    const ref = (await readSafetensors(`${dir}/reference.safetensors`)).tensors;
    const model = await T5Model.load(dir);
    const batch = { inputIds: ref.input_ids!, attentionMask: ref.attention_mask!, labels: ref.labels! };
    await model.forward(batch, { backward: true });
    const once = model.getGradient('lm_head.weight')!.data.slice();
    await model.forward(batch, { backward: true });
    const twice = model.getGradient('lm_head.weight')!.data;
    expect(
      maxAbsDiff(
        twice,
        once.map((x) => 2 * x),
      ),
    ).toBeLessThan(1e-6);
    model.zeroGrad();
    expect(model.getGradient('lm_head.weight')).toBeNull();
    model.dispose();
  });
});

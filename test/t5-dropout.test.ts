/** The counter-based dropout used in training mode (native/t5/dropout.cc). */
import { describe, expect, it } from 'vitest';
import { devNative, manualSeed } from '../lib/native/index.js';
import { T5Model } from '../lib/model/t5-model.js';
import { tensor } from '../lib/model/tensor.js';

describe('fast dropout', () => {
  it('drops a fraction p, scales the rest by 1/(1-p), and backward applies the same mask', () => {
    const n = 200_000;
    const x = tensor(
      Float32Array.from({ length: n }, (_, i) => 1 + (i % 7)),
      [n],
    );
    for (const p of [0.1, 0.5]) {
      const { out, grad } = devNative().dev.dropoutForTest(x, p);
      let dropped = 0;
      let wrongOut = 0;
      let wrongGrad = 0;
      for (let i = 0; i < n; i++) {
        const kept = out.data[i] !== 0;
        if (!kept) dropped++;
        if (Math.abs(out.data[i] - (kept ? x.data[i]! / (1 - p) : 0)) > 1e-5) wrongOut++;
        if (Math.abs(grad.data[i] - (kept ? 1 / (1 - p) : 0)) > 1e-6) wrongGrad++;
      }
      expect(wrongOut).toBe(0);
      expect(wrongGrad).toBe(0);
      // Binomial(n, p): 6 standard deviations.
      expect(Math.abs(dropped / n - p)).toBeLessThan(6 * Math.sqrt((p * (1 - p)) / n));
    }
  });

  it('masks of successive calls differ, and manualSeed makes training-mode losses repeat', async () => {
    const x = tensor(new Float32Array(1000).fill(1), [1000]);
    const a = devNative().dev.dropoutForTest(x, 0.5).out.data;
    const b = devNative().dev.dropoutForTest(x, 0.5).out.data;
    expect(Array.from(a)).not.toEqual(Array.from(b));

    const model = await T5Model.fromConfig(
      {
        model_type: 't5',
        vocab_size: 100,
        d_model: 32,
        d_kv: 8,
        d_ff: 64,
        num_layers: 2,
        num_heads: 4,
        feed_forward_proj: 'gated-gelu',
        tie_word_embeddings: false,
        dropout_rate: 0.3,
      },
      { seed: 0 },
    );
    const batch = { inputIds: tensor(new Int32Array([5, 6, 7, 8, 1]), [1, 5]), labels: tensor(new Int32Array([9, 10, 11, 1]), [1, 4]) };
    manualSeed(123);
    const l1 = (await model.forward(batch, { train: true })).loss;
    const l2 = (await model.forward(batch, { train: true })).loss;
    manualSeed(123);
    const l3 = (await model.forward(batch, { train: true })).loss;
    expect(l3).toBe(l1);
    expect(l2).not.toBe(l1);
    expect(() => manualSeed(-1)).toThrow(/non-negative integer/);
    model.dispose();
  });
});

/**
 * Sampled generation for decoder-only models: the generation engine's counter-based sampler
 * (native/generate/sampler.h), so a seeded call is reproducible and a prompt with its own seed samples
 * the same whatever shares the batch; greedy stays HF's greedy; temperature -> 0 and top-k 1 are greedy.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CausalLM } from '../lib/model/causal-model.js';
import { readSafetensors } from '../lib/model/safetensors.js';
import { rowsOf, tensor, type Tensor } from '../lib/model/tensor.js';
import { FIXTURES } from './helpers/fixtures.js';

const CASE = join(FIXTURES, 'causal-lm-hf-reference', 'llama-tiny-gqa-seed1');

let model: CausalLM;
let ref: Record<string, Tensor>;
beforeAll(async () => {
  model = await CausalLM.load(CASE);
  ref = (await readSafetensors(join(CASE, 'reference.safetensors'))).tensors as Record<string, Tensor>;
});
afterAll(() => model.dispose());

/** Unpadded prompts of one length, so batch composition cannot change the logits' numerics. */
function prompts(...rows: number[][]): { inputIds: Tensor<Int32Array> } {
  return { inputIds: tensor(Int32Array.from(rows.flat()), [rows.length, rows[0]!.length]) };
}
const A = [2, 17, 33, 5, 61, 8];
const B = [2, 40, 12, 77, 3, 29];

describe('causal sampling', () => {
  it('is reproducible for a seed and differs across seeds', async () => {
    const opts = { maxNewTokens: 12, doSample: true, temperature: 1, topK: 0 };
    const a = await model.generate(prompts(A, B), { ...opts, seed: 7 });
    const b = await model.generate(prompts(A, B), { ...opts, seed: 7 });
    expect(Array.from(b.data)).toEqual(Array.from(a.data));
    const outs = new Set<string>();
    for (const seed of [1, 2, 3, 4]) outs.add(Array.from((await model.generate(prompts(A, B), { ...opts, seed })).data).join(','));
    // A random tiny model's next-token distribution is broad: four seeds give more than one sequence.
    expect(outs.size).toBeGreaterThan(1);
  });

  it('with per-prompt seeds, a prompt samples the same alone or in a batch', async () => {
    const opts = { maxNewTokens: 10, doSample: true, temperature: 0.9, topK: 20, topP: 0.95 };
    const alone = rowsOf(await model.generate(prompts(A), { ...opts, seeds: [11] }));
    const batched = rowsOf(await model.generate(prompts(B, A), { ...opts, seeds: [5, 11] }));
    expect(batched[1]!.slice(0, alone[0]!.length)).toEqual(alone[0]);
  });

  it('one seed for the call is one request of B*n samples: prompt b, sequence j is sample b*n + j', async () => {
    const opts = { maxNewTokens: 8, doSample: true, temperature: 1.3, topK: 0 };
    // Two copies of A with seed 3 are samples 0 and 1 of (3, ·) — the same as A with seeds [3] and two sequences.
    const twoPrompts = await model.generate(prompts(A, A), { ...opts, seed: 3 });
    const twoSequences = await model.generate(prompts(A), { ...opts, seeds: [3], numReturnSequences: 2 });
    expect(twoSequences.shape).toEqual(twoPrompts.shape);
    expect(Array.from(twoSequences.data)).toEqual(Array.from(twoPrompts.data));
    expect(rowsOf(twoPrompts)[0]).not.toEqual(rowsOf(twoPrompts)[1]);
  });

  it('leaves greedy decoding unchanged: sampling settings without doSample are ignored (HF greedy on left-padded prompts)', async () => {
    const batch = { inputIds: ref.gen_input_ids!, attentionMask: ref.gen_attention_mask! };
    const steps = ref.generated!.shape[1]! - ref.gen_input_ids!.shape[1]!;
    const greedy = await model.generate(batch, { maxNewTokens: steps, temperature: 0.5, topK: 3, topP: 0.5, seed: 9 });
    expect(Array.from(greedy.data)).toEqual(Array.from(ref.generated!.data as BigInt64Array, Number));
  });

  it('temperature -> 0 and top-k 1 give the greedy tokens', async () => {
    const batch = { inputIds: ref.gen_input_ids!, attentionMask: ref.gen_attention_mask! };
    const steps = ref.generated!.shape[1]! - ref.gen_input_ids!.shape[1]!;
    const want = Array.from(ref.generated!.data as BigInt64Array, Number);
    for (const seed of [0, 1, 2]) {
      const cold = await model.generate(batch, { maxNewTokens: steps, doSample: true, temperature: 1e-6, topK: 0, seed });
      expect(Array.from(cold.data), `seed ${seed}`).toEqual(want);
      const top1 = await model.generate(batch, { maxNewTokens: steps, doSample: true, topK: 1, seed });
      expect(Array.from(top1.data), `seed ${seed}`).toEqual(want);
    }
  });

  it("draws from softmax(logits / T), restricted to the top k, at HF's next-token logits", async () => {
    const V = 96;
    const T = A.length;
    const out = await model.forward(prompts(A), { returnLogits: true });
    const last = Array.from(out.logits!.data.subarray((T - 1) * V, T * V));
    const N = 8000;
    for (const { temperature, topK } of [
      { temperature: 0.7, topK: 0 },
      { temperature: 1.5, topK: 5 },
    ]) {
      const gen = await model.generate(prompts(A), { maxNewTokens: 1, doSample: true, temperature, topK, numReturnSequences: N, seeds: [21] });
      const counts = new Array<number>(V).fill(0);
      for (const row of rowsOf(gen)) counts[row[T]!]!++;
      const kth = [...last].sort((a, b) => b - a)[topK > 0 ? topK - 1 : V - 1]!;
      const w = last.map((l) => (l >= kth ? Math.exp(l / temperature) : 0));
      const z = w.reduce((a, b) => a + b, 0);
      // Total variation between the empirical and the expected distribution (expected ~0.03 at N = 8000).
      const tv = 0.5 * counts.reduce((acc, c, i) => acc + Math.abs(c / N - w[i]! / z), 0);
      expect(tv, `T=${temperature} k=${topK}`).toBeLessThan(0.06);
      counts.forEach((c, i) => {
        if (w[i] === 0) expect(c, `token ${i} outside the top ${topK}`).toBe(0);
      });
    }
  });

  it('refuses bad sampling settings, naming the field', async () => {
    const p = prompts(A, B);
    await expect(model.generate(p, { doSample: true, temperature: 0 })).rejects.toThrow(/temperature must be > 0/);
    await expect(model.generate(p, { doSample: true, topP: 0 })).rejects.toThrow(/topP must be in \(0, 1\]/);
    await expect(model.generate(p, { doSample: true, topK: -1 })).rejects.toThrow(/topK must be >= 0/);
    await expect(model.generate(p, { numReturnSequences: 2 })).rejects.toThrow(/numReturnSequences > 1 needs doSample/);
    await expect(model.generate(p, { doSample: true, seeds: [1] })).rejects.toThrow(/seeds: 1 given for 2 prompts/);
    await expect(model.generate(p, { doSample: true, seeds: [1, -2] })).rejects.toThrow(/seeds\[1\] must be >= 0/);
    await expect(model.generate(p, { doSample: true, seed: 1, seeds: [1, 2] })).rejects.toThrow(/seed or seeds, not both/);
    await expect(model.generate(p, { doSample: true, seeds: [1, undefined as unknown as number] })).rejects.toThrow(
      /seeds\[1\] must be an integer in \[0, 2\^53\)/,
    );
  });
});

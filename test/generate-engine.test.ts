/**
 * The continuous-batching generation engine (native/generate, lib/model/generate-stream.ts):
 * greedy ids equal HF's and the static path's; seeded sampling is per-request deterministic (alone,
 * in a full engine, with another slot count, in another order); per-request maxNewTokens; EOS ends a
 * row early; bad requests are refused naming the field. On CUDA (only where a GPU is visible: the GPU
 * machine's scripts/device/gpu-check.sh), the captured decode step gives the CPU engine's greedy ids
 * and per-request deterministic samples.
 */
import { describe, expect, it } from 'vitest';
import { native } from '../lib/native/index.js';
import { T5Model } from '../lib/model/t5-model.js';
import type { GenerationRequest, GenerationResult } from '../lib/model/generate-stream.js';
import { readSafetensors } from '../lib/model/safetensors.js';
import { tensor, padBatch } from '../lib/model/tensor.js';
import type { Tensor } from '../lib/model/tensor.js';
import { T5_CASES, fixtureDir } from './helpers/fixtures.js';

const TINY = {
  model_type: 't5',
  vocab_size: 96,
  d_model: 32,
  d_kv: 8,
  d_ff: 64,
  num_layers: 2,
  num_decoder_layers: 2,
  num_heads: 4,
  feed_forward_proj: 'gated-gelu',
  tie_word_embeddings: false,
  dropout_rate: 0,
  relative_attention_num_buckets: 8,
  relative_attention_max_distance: 16,
  eos_token_id: 1,
  pad_token_id: 0,
  decoder_start_token_id: 0,
};

async function collect(model: T5Model, reqs: GenerationRequest[], slots?: number, dtype?: 'float32' | 'bfloat16') {
  const out: GenerationResult[] = [];
  for await (const r of model.generateStream(reqs, { ...(slots ? { slots } : {}), ...(dtype ? { dtype } : {}) })) out.push(r);
  return out;
}

function lcgRows(n: number, seed: number, vocab: number, minLen: number, maxLen: number): number[][] {
  let s = seed;
  const next = () => (s = (s * 1103515245 + 12345) % 2 ** 31);
  return Array.from({ length: n }, () => {
    const len = minLen + (next() % (maxLen - minLen + 1));
    return Array.from({ length: len }, () => 2 + (next() % (vocab - 2)));
  });
}

describe.each(T5_CASES)('engine greedy = HF = static path: %s', (name) => {
  it('reference ids, and 24 tokens against the static path', async () => {
    const dir = fixtureDir(name);
    const ref = (await readSafetensors(`${dir}/reference.safetensors`)).tensors as Record<string, Tensor>;
    const model = await T5Model.load(dir);
    try {
      const batch = { inputIds: ref.input_ids!, attentionMask: ref.attention_mask! };
      const gen = await model.generate(batch, { maxNewTokens: 8 }); // the engine path
      expect(gen.shape).toEqual(ref.generated!.shape);
      expect(Array.from(gen.data)).toEqual(Array.from(ref.generated!.data as Int32Array));
      const longer = await model.generate(batch, { maxNewTokens: 24 });
      const stat = await model.native.generate(batch, { maxNewTokens: 24 });
      expect(longer.shape).toEqual(stat.shape);
      expect(Array.from(longer.data)).toEqual(Array.from(stat.data));
    } finally {
      model.dispose();
    }
  });
});

describe('engine', () => {
  it('greedy on random rows equals the static path for 1, 3 and 16 slots', async () => {
    const model = await T5Model.fromConfig(TINY, { seed: 7 });
    try {
      const rows = lcgRows(12, 3, TINY.vocab_size, 3, 20);
      const { ids, mask } = padBatch(rows, 0);
      const stat = await model.native.generate({ inputIds: ids, attentionMask: mask }, { maxNewTokens: 40 });
      const width = stat.shape[1]!;
      for (const slots of [1, 3, 16]) {
        const res = await collect(
          model,
          rows.map((r) => ({ inputIds: r, maxNewTokens: 40 })),
          slots,
        );
        expect(res.length).toBe(rows.length);
        for (const r of res) {
          const want = Array.from(stat.data.subarray(r.index * width, (r.index + 1) * width));
          const got = Array.from(r.sequences[0]!);
          expect(got, `row ${r.index}, ${slots} slots`).toEqual(want.slice(0, got.length));
          expect(want.slice(got.length).every((x) => x === 0)).toBe(true);
        }
      }
    } finally {
      model.dispose();
    }
  });

  it('a seeded sampled request gives the same tokens alone, in a full engine, with other slot counts and orders', async () => {
    const model = await T5Model.fromConfig(TINY, { seed: 11 });
    try {
      const rows = lcgRows(10, 5, TINY.vocab_size, 2, 16);
      const reqs: GenerationRequest[] = rows.map((r, i) => ({
        inputIds: r,
        maxNewTokens: 5 + ((i * 7) % 20),
        samples: 3,
        doSample: true,
        temperature: 0.7 + 0.05 * i,
        topK: i % 3 === 0 ? 0 : 10,
        topP: i % 2 === 0 ? 1 : 0.9,
        seed: 100 + i,
      }));
      const byIndex = (res: GenerationResult[]) => {
        const m = new Map<number, number[][]>();
        for (const r of res)
          m.set(
            r.index,
            r.sequences.map((s) => Array.from(s)),
          );
        return m;
      };
      const full = byIndex(await collect(model, reqs, 64));
      const two = byIndex(await collect(model, reqs, 2));
      const reversed = await collect(model, [...reqs].reverse(), 5);
      for (const r of reversed) expect(r.sequences.map((s) => Array.from(s))).toEqual(full.get(reqs.length - 1 - r.index));
      for (let i = 0; i < reqs.length; i++) {
        expect(two.get(i)).toEqual(full.get(i));
        const alone = await collect(model, [reqs[i]!], 1);
        expect(alone[0]!.sequences.map((s) => Array.from(s))).toEqual(full.get(i));
      }
      // The samples of one request differ (a different counter stream each).
      const s = full.get(1)!;
      expect(new Set(s.map((x) => x.join(','))).size).toBeGreaterThan(1);
      // Another seed, other tokens.
      const other = await collect(model, [{ ...reqs[1]!, seed: 999 }], 4);
      expect(other[0]!.sequences.map((x) => Array.from(x))).not.toEqual(full.get(1));
    } finally {
      model.dispose();
    }
  });

  it("respects each request's maxNewTokens; EOS ends a row early; results stream in completion order", async () => {
    const model = await T5Model.fromConfig(TINY, { seed: 2 });
    try {
      const rows = lcgRows(6, 9, TINY.vocab_size, 3, 12);
      const limits = [1, 17, 4, 30, 2, 9];
      const res = await collect(
        model,
        rows.map((r, i) => ({ inputIds: r, maxNewTokens: limits[i]!, doSample: true, temperature: 1.5, topK: 0, seed: i })),
        8,
      );
      for (const r of res) {
        const seq = Array.from(r.sequences[0]!);
        expect(seq[0]).toBe(0);
        const n = seq.length - 1;
        expect(n).toBeLessThanOrEqual(limits[r.index]!);
        if (n < limits[r.index]!) expect(seq[seq.length - 1]).toBe(1); // ended by EOS
        expect(seq.slice(1, -1).includes(1)).toBe(false);
        expect(r.newTokens).toBe(n);
      }
      // A 1-token request finishes before a 30-token one that started with it.
      const order = res.map((r) => r.index);
      expect(order.indexOf(0)).toBeLessThan(order.indexOf(3));
    } finally {
      model.dispose();
    }
    // Every token an EOS: each row ends after one step.
    const eosAll = await T5Model.fromConfig({ ...TINY, eos_token_id: Array.from({ length: 96 }, (_, i) => i) }, { seed: 1 });
    try {
      const res = await collect(eosAll, [
        { inputIds: [5, 6, 7], maxNewTokens: 1_000_000 },
        { inputIds: [9], maxNewTokens: 50, samples: 2, doSample: true, seed: 3 },
      ]);
      for (const r of res) for (const s of r.sequences) expect(s.length).toBe(2);
      const g = await eosAll.generate({ inputIds: tensor(new Int32Array([5, 6, 7]), [1, 3]) }, { maxNewTokens: 1_000_000_000 });
      expect(g.shape).toEqual([1, 2]);
    } finally {
      eosAll.dispose();
    }
  });

  it('bfloat16 weights: a copy for generation only; the model stays float32', async () => {
    const model = await T5Model.fromConfig(TINY, { seed: 4 });
    try {
      const rows = lcgRows(5, 1, TINY.vocab_size, 3, 10);
      const res = await collect(
        model,
        rows.map((r) => ({ inputIds: r, maxNewTokens: 12, samples: 2, doSample: true, seed: 1 })),
        4,
        'bfloat16',
      );
      expect(res.length).toBe(5);
      for (const r of res) for (const s of r.sequences) expect(s.length).toBeGreaterThan(1);
      expect(model.info().dtype).toBe('float32');
      const again = await collect(
        model,
        rows.map((r) => ({ inputIds: r, maxNewTokens: 12, samples: 2, doSample: true, seed: 1 })),
        2,
        'bfloat16',
      );
      const key = (xs: GenerationResult[]) => JSON.stringify([...xs].sort((a, b) => a.index - b.index).map((r) => r.sequences.map((s) => Array.from(s))));
      expect(key(again)).toEqual(key(res));
    } finally {
      model.dispose();
    }
  });

  it('bad requests are refused naming the field', async () => {
    const model = await T5Model.fromConfig(TINY, { seed: 1 });
    const run = (reqs: unknown[]) => collect(model, reqs as GenerationRequest[]);
    try {
      await expect(run([{ inputIds: [5] }, { inputIds: [5], maxNewTokens: 0 }])).rejects.toThrow(/requests\[1\]\.maxNewTokens must be >= 1/);
      await expect(run([{ inputIds: [5, 96] }])).rejects.toThrow(/requests\[0\]\.inputIds\[1\] = 96 is outside \[0, vocab_size 96\)/);
      await expect(run([{ inputIds: [] }])).rejects.toThrow(/requests\[0\]\.inputIds must hold at least one token id/);
      await expect(run([{ inputIds: [5], samples: 2 }])).rejects.toThrow(/requests\[0\]\.samples > 1 needs doSample/);
      await expect(run([{ inputIds: [5], doSample: true, temperature: 0 }])).rejects.toThrow(/requests\[0\]\.temperature must be > 0/);
      await expect(run([{ inputIds: [5], topP: 0 }])).rejects.toThrow(/requests\[0\]\.topP must be in \(0, 1\]/);
      await expect(run([{ inputIds: [5], topK: -1 }])).rejects.toThrow(/requests\[0\]\.topK must be >= 0/);
      await expect(run([{ inputIds: [5], maxNewTokens: 1.5 }])).rejects.toThrow(/requests\[0\]\.maxNewTokens must be an integer/);
      await expect(run([{ inputIds: 'abc' }])).rejects.toThrow(/requests\[0\]\.inputIds must be an Int32Array or an array of integers/);
      await expect(model.generateStream([{ inputIds: [5] }], { slots: 0 }).next()).rejects.toThrow(/slots must be >= 1/);
      await expect(run([{ inputIds: [5], samples: 2, doSample: true, maxNewTokens: [3] }])).rejects.toThrow(
        /requests\[0\]\.maxNewTokens has 1 entries for 2 samples/,
      );
      await expect(collect(model, [{ inputIds: [5] }], 2, 'float16' as 'bfloat16')).rejects.toThrow(/dtype must be 'float32' or 'bfloat16'/);
    } finally {
      model.dispose();
    }
  });
});

const hasCuda = native().runtime.info().cudaAvailable;
if (!hasCuda) console.info('engine CUDA test skipped: no GPU visible to this libtorch');

describe.skipIf(!hasCuda)('engine on CUDA (decode step in a CUDA graph)', () => {
  it('greedy ids equal the CPU engine; a seeded request samples alike alone and in a full engine; caches grow; bf16 runs', async () => {
    const cpu = await T5Model.fromConfig(TINY, { seed: 7 });
    const gpu = await T5Model.fromConfig(TINY, { seed: 7, device: 'cuda' });
    try {
      // Sources of 3..40 tokens and up to 150 new ones: the cache (first 64 positions) and the
      // cross-attention buffers grow mid-run, and the graph is captured again.
      const rows = lcgRows(12, 3, TINY.vocab_size, 3, 40);
      const greedy = rows.map((r, i) => ({ inputIds: r, maxNewTokens: 10 + ((i * 37) % 140) }));
      const seqs = (res: GenerationResult[]) => new Map(res.map((r) => [r.index, r.sequences.map((s) => Array.from(s))]));
      const want = seqs(await collect(cpu, greedy, 4));
      for (const slots of [1, 5, 16]) expect(seqs(await collect(gpu, greedy, slots)), `${slots} slots`).toEqual(want);

      const sampled: GenerationRequest[] = rows.map((r, i) => ({
        inputIds: r,
        maxNewTokens: 5 + ((i * 7) % 30),
        samples: 3,
        doSample: true,
        temperature: 0.8,
        topK: i % 3 === 0 ? 0 : 10,
        topP: i % 2 === 0 ? 1 : 0.9,
        seed: 50 + i,
      }));
      const full = seqs(await collect(gpu, sampled, 64));
      expect(seqs(await collect(gpu, sampled, 2))).toEqual(full);
      const alone = await collect(gpu, [sampled[4]!], 1);
      expect(alone[0]!.sequences.map((s) => Array.from(s))).toEqual(full.get(4));
      expect(new Set(full.get(1)!.map((s) => s.join(','))).size).toBeGreaterThan(1);

      const bf16 = await collect(gpu, sampled.slice(0, 4), 8, 'bfloat16');
      expect(bf16.length).toBe(4);
      for (const r of bf16) for (const s of r.sequences) expect(s.length).toBeGreaterThan(1);
    } finally {
      cpu.dispose();
      gpu.dispose();
    }
  });
});

/**
 * Causal LMs (Llama, Qwen2) on the continuous-batching generation engine (native/generate/
 * causal_decoder.h, CausalLM.generateStream): greedy ids equal HF's on the reference fixtures and the
 * static KV-cached path's (CausalLM.generate from left-padded prompts) with prompts of different
 * lengths, fewer slots than requests (rows refilled mid-run) and several samples per request; seeded
 * sampling equals the static path's per-prompt seeds and is the same whatever the slot count and the
 * other requests in flight; bad requests are refused naming the request and field.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CausalLM } from '../lib/model/causal-model.js';
import type { GenerationRequest, GenerationResult } from '../lib/model/generate-stream.js';
import { readSafetensors } from '../lib/model/safetensors.js';
import { rowsOf, tensor } from '../lib/model/tensor.js';
import type { Tensor } from '../lib/model/tensor.js';
import { FIXTURES } from './helpers/fixtures.js';

const REFERENCE = join(FIXTURES, 'causal-lm-hf-reference');
const CASES = ['llama-tiny-gqa-seed1', 'qwen2-style-tiny-bias-tied-seed3', 'llama-tiny-rope-linear-long-seed4'] as const;

async function collect(model: CausalLM, reqs: GenerationRequest[], slots?: number): Promise<GenerationResult[]> {
  const out: GenerationResult[] = [];
  for await (const r of model.generateStream(reqs, slots ? { slots } : {})) out.push(r);
  return out.sort((a, b) => a.index - b.index);
}

function lcgRows(n: number, seed: number, vocab: number, minLen: number, maxLen: number): number[][] {
  let s = seed;
  const next = () => (s = (s * 1103515245 + 12345) % 2 ** 31);
  return Array.from({ length: n }, () => {
    const len = minLen + (next() % (maxLen - minLen + 1));
    return Array.from({ length: len }, () => 3 + (next() % (vocab - 3)));
  });
}

function leftPad(rows: number[][]) {
  const L = Math.max(...rows.map((r) => r.length));
  const ids = new Int32Array(rows.length * L);
  const mask = new Int32Array(rows.length * L);
  rows.forEach((r, i) => {
    ids.set(r, (i + 1) * L - r.length);
    mask.fill(1, (i + 1) * L - r.length, (i + 1) * L);
  });
  return { inputIds: tensor(ids, [rows.length, L]), attentionMask: tensor(mask, [rows.length, L]), width: L };
}

/** The static path's new tokens per row, cut after the first EOS (what follows is padding). */
function staticNew(out: Tensor<Int32Array>, width: number, eos: number[]): number[][] {
  return rowsOf(out).map((r) => {
    const fresh = Array.from(r.slice(width));
    const end = fresh.findIndex((t) => eos.includes(t));
    return end < 0 ? fresh : fresh.slice(0, end + 1);
  });
}

describe.each(CASES)('causal engine greedy = HF = static path: %s', (name) => {
  it('the fixture greedy ids, then 24 tokens of 7 prompts against the static path (2 slots)', async () => {
    const dir = join(REFERENCE, name);
    const ref = (await readSafetensors(join(dir, 'reference.safetensors'))).tensors as Record<string, Tensor>;
    const model = await CausalLM.load(dir);
    try {
      const ids = rowsOf(ref.gen_input_ids!).map((r) => Array.from(r, Number));
      const mask = rowsOf(ref.gen_attention_mask!).map((r) => Array.from(r, Number));
      const width = ids[0]!.length;
      const generated = rowsOf(ref.generated!).map((r) => Array.from(r, Number).slice(width));
      const prompts = ids.map((r, i) => r.filter((_, t) => mask[i]![t] === 1));
      const got = await collect(
        model,
        prompts.map((p) => ({ inputIds: p, maxNewTokens: generated[0]!.length })),
        2,
      );
      got.forEach((r, i) => expect(Array.from(r.sequences[0]!), `${name} prompt ${i}`).toEqual(generated[i]));

      const eos = model.info().eosTokenIds;
      const rows = lcgRows(7, 11, model.info().vocabSize, 1, 13);
      const batch = leftPad(rows);
      const want = staticNew(await model.generate(batch, { maxNewTokens: 24 }), batch.width, eos);
      const engine = await collect(
        model,
        rows.map((p) => ({ inputIds: p, maxNewTokens: 24 })),
        2,
      );
      engine.forEach((r, i) => {
        expect(Array.from(r.sequences[0]!), `row ${i}`).toEqual(want[i]);
        expect(r.newTokens).toBe(want[i]!.length);
      });
      // Rows ending at different steps: slots refilled mid-run and the last rows moved into the holes.
      const limits = rows.map((_, i) => 24 - 3 * ((i * 5) % 7));
      const ragged = await collect(
        model,
        rows.map((p, i) => ({ inputIds: p, maxNewTokens: limits[i]! })),
        3,
      );
      ragged.forEach((r, i) => expect(Array.from(r.sequences[0]!), `row ${i}`).toEqual(want[i]!.slice(0, limits[i]!)));
    } finally {
      model.dispose();
    }
  });
});

describe('causal engine sampling', () => {
  it("equals the static path's per-prompt seeds, for any slot count and company", async () => {
    const model = await CausalLM.load(join(REFERENCE, 'llama-tiny-gqa-seed1'));
    try {
      const rows = lcgRows(5, 5, 96, 2, 9);
      const seeds = [7, 8, 9, 10, 11];
      const n = 3;
      const batch = leftPad(rows);
      const opts = { maxNewTokens: 12, doSample: true, temperature: 0.9, topK: 20, topP: 0.95, numReturnSequences: n, seeds };
      const want = staticNew(await model.generate(batch, opts), batch.width, model.info().eosTokenIds);
      const reqs: GenerationRequest[] = rows.map((p, i) => ({
        inputIds: p,
        maxNewTokens: 12,
        samples: n,
        doSample: true,
        temperature: 0.9,
        topK: 20,
        topP: 0.95,
        seed: seeds[i]!,
      }));
      const seqs = (rs: GenerationResult[]) => rs.map((r) => r.sequences.map((s) => Array.from(s)));
      const all = seqs(await collect(model, reqs, 4));
      all.forEach((s, i) => expect(s, `prompt ${i}`).toEqual(want.slice(i * n, (i + 1) * n)));
      // Per-sample limits (rows ending at different steps, refills and moves): prefixes of the same samples.
      const limits = [4, 12, 7];
      const cut = seqs(
        await collect(
          model,
          reqs.map((r) => ({ ...r, maxNewTokens: limits })),
          4,
        ),
      );
      cut.forEach((s, i) => s.forEach((seq, j) => expect(seq, `prompt ${i} sample ${j}`).toEqual(all[i]![j]!.slice(0, limits[j]!))));
      // Other slot counts, another order, alone: the same tokens.
      expect(seqs(await collect(model, reqs, 1))).toEqual(all);
      expect(seqs(await collect(model, reqs, 64))).toEqual(all);
      const reversed = seqs(await collect(model, [...reqs].reverse(), 5)).reverse();
      expect(reversed).toEqual(all);
      expect(seqs(await collect(model, [reqs[2]!], 3))[0]).toEqual(all[2]);
      // Different seeds differ.
      const other = seqs(
        await collect(
          model,
          reqs.map((r) => ({ ...r, seed: r.seed! + 100 })),
        ),
      );
      expect(other).not.toEqual(all);
    } finally {
      model.dispose();
    }
  });

  it('bfloat16 runs and stops at maxNewTokens or EOS', async () => {
    const model = await CausalLM.load(join(REFERENCE, 'qwen2-style-tiny-bias-tied-seed3'));
    try {
      const rows = lcgRows(4, 3, 96, 1, 6);
      const out: GenerationResult[] = [];
      for await (const r of model.generateStream(
        rows.map((p) => ({ inputIds: p, maxNewTokens: [3, 9], samples: 2, doSample: true, seed: 1 })),
        { slots: 3, dtype: 'bfloat16' },
      ))
        out.push(r);
      expect(out).toHaveLength(4);
      for (const r of out) {
        expect(r.sequences[0]!.length).toBeLessThanOrEqual(3);
        expect(r.sequences[1]!.length).toBeLessThanOrEqual(9);
        for (const s of r.sequences) {
          expect(s.length).toBeGreaterThan(0);
          const eos = s.indexOf(1);
          expect(eos < 0 || eos === s.length - 1).toBe(true);
        }
      }
    } finally {
      model.dispose();
    }
  });
});

describe('causal engine bad input', () => {
  it('names the request and field', async () => {
    const model = await CausalLM.load(join(REFERENCE, 'llama-tiny-gqa-seed1'));
    try {
      const run = (reqs: GenerationRequest[]) => collect(model, reqs);
      await expect(run([{ inputIds: [3] }, { inputIds: [3, 96] }])).rejects.toThrow(/requests\[1\]\.inputIds\[1\] = 96 is outside \[0, vocab_size 96\)/);
      await expect(run([{ inputIds: [] }])).rejects.toThrow(/requests\[0\]\.inputIds must hold at least one token id/);
      await expect(run([{ inputIds: [3] }, { inputIds: [4], maxNewTokens: 0 }])).rejects.toThrow(/requests\[1\]\.maxNewTokens must be >= 1/);
      await expect(run([{ inputIds: [3], samples: 2 }])).rejects.toThrow(/requests\[0\]\.samples > 1 needs doSample/);
      await expect(run([{ inputIds: [3] }]).then(() => 'ok')).resolves.toBe('ok');
    } finally {
      model.dispose();
    }
  });
});

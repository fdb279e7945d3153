/**
 * Decoder-only parity with HF transformers on the reference fixtures
 * (test/fixtures/causal-lm-hf-reference, made by LlamaForCausalLM in transformers 4.33.2 on PyTorch
 * 1.13.1): logits, loss, every parameter's gradient and greedy generation from left-padded prompts,
 * at the tolerances the fixtures' README gives; `model check` and the auto-loader on the same folders.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CausalLM } from '../lib/model/causal-model.js';
import { loadModel, modelFamily } from '../lib/model/auto-model.js';
import { checkAgainstReference, findReferenceCases } from '../lib/model/check.js';
import { readSafetensors } from '../lib/model/safetensors.js';
import { T5Model } from '../lib/model/t5-model.js';
import type { Tensor } from '../lib/model/tensor.js';
import { FIXTURES, T5_CASES, fixtureDir, maxAbsDiff } from './helpers/fixtures.js';

const REFERENCE = join(FIXTURES, 'causal-lm-hf-reference');
const CASES = ['llama-tiny-gqa-seed1', 'qwen2-style-tiny-bias-tied-seed3', 'llama-tiny-rope-linear-long-seed4'] as const;

async function reference(
  name: string,
): Promise<{ dir: string; ref: Record<string, Tensor>; json: { model_safetensors_keys: string[]; num_loss_tokens: number } }> {
  const dir = join(REFERENCE, name);
  const ref = (await readSafetensors(join(dir, 'reference.safetensors'))).tensors as Record<string, Tensor>;
  const json = JSON.parse(await readFile(join(dir, 'reference.json'), 'utf8'));
  return { dir, ref, json };
}

describe.each(CASES)('HF parity: %s', (name) => {
  it('matches logits, loss, all gradients and greedy output from left-padded prompts', async () => {
    const { dir, ref, json } = await reference(name);
    const model = await CausalLM.load(dir);
    try {
      const out = await model.forward(
        { inputIds: ref.input_ids!, attentionMask: ref.attention_mask!, labels: ref.labels! },
        { returnLogits: true, backward: true },
      );
      expect(out.logits!.shape).toEqual(ref.logits!.shape);
      expect(maxAbsDiff(out.logits!.data, ref.logits!.data as Float32Array)).toBeLessThan(5e-5);
      expect(Math.abs(out.loss! - (ref.loss!.data as Float32Array)[0]!)).toBeLessThan(1e-5);
      expect(out.numLossTokens).toBe(json.num_loss_tokens);

      // Every parameter has HF's name and HF's gradient (a tied head once, as the embedding).
      const names = model.parameterNames();
      const refGrads = Object.keys(ref)
        .filter((k) => k.startsWith('grad.'))
        .map((k) => k.slice(5));
      expect(new Set(names)).toEqual(new Set(refGrads));
      expect(new Set(names)).toEqual(new Set(json.model_safetensors_keys));
      for (const n of names) {
        const g = model.getGradient(n);
        expect(g, n).not.toBeNull();
        expect(g!.shape, n).toEqual(ref[`grad.${n}`]!.shape);
        expect(maxAbsDiff(g!.data, ref[`grad.${n}`]!.data as Float32Array), n).toBeLessThan(1e-5);
      }

      const newTokens = ref.generated!.shape[1]! - ref.gen_input_ids!.shape[1]!;
      const gen = await model.generate({ inputIds: ref.gen_input_ids!, attentionMask: ref.gen_attention_mask! }, { maxNewTokens: newTokens });
      expect(gen.shape).toEqual(ref.generated!.shape);
      expect(Array.from(gen.data)).toEqual(Array.from(ref.generated!.data as BigInt64Array, Number));
    } finally {
      model.dispose();
    }
  });
});

describe('explicit positions', () => {
  it('positionIds 0..T-1 give the default logits; RoPE sees relative positions only', async () => {
    const { dir, ref } = await reference(CASES[0]);
    const model = await CausalLM.load(dir);
    try {
      const [B, T] = ref.input_ids!.shape as [number, number];
      const pos = new Int32Array(B * T).map((_, i) => i % T);
      const batch = { inputIds: ref.input_ids!, attentionMask: ref.attention_mask! };
      const base = await model.forward(batch, { returnLogits: true });
      const same = await model.forward({ ...batch, positionIds: { data: pos, shape: [B, T] } }, { returnLogits: true });
      expect(maxAbsDiff(same.logits!.data, base.logits!.data)).toBe(0);
      // A uniform shift keeps every query-key distance (equal up to rounding); stretching changes them.
      const shifted = await model.forward({ ...batch, positionIds: { data: pos.map((p) => p + 3), shape: [B, T] } }, { returnLogits: true });
      expect(maxAbsDiff(shifted.logits!.data, base.logits!.data)).toBeLessThan(5e-5);
      const stretched = await model.forward({ ...batch, positionIds: { data: pos.map((p) => 2 * p), shape: [B, T] } }, { returnLogits: true });
      expect(maxAbsDiff(stretched.logits!.data, base.logits!.data)).toBeGreaterThan(1e-3);
    } finally {
      model.dispose();
    }
  });
});

describe('model check and the auto-loader', () => {
  it('checkAgainstReference recognises every causal fixture folder and passes', async () => {
    const cases = findReferenceCases(REFERENCE);
    expect(cases.map((c) => c.split('/').pop()).sort()).toEqual([...CASES].sort());
    for (const c of cases) {
      const r = await checkAgainstReference(c);
      expect(r.ok, `${r.name}: ${JSON.stringify(r)}`).toBe(true);
    }
  });

  it('loadModel picks the class by config.json model_type', async () => {
    expect(await modelFamily(join(REFERENCE, CASES[1]))).toBe('causal');
    expect(await modelFamily(fixtureDir(T5_CASES[0]))).toBe('t5');
    const c = await loadModel(join(REFERENCE, CASES[1]));
    expect(c).toBeInstanceOf(CausalLM);
    expect((c as CausalLM).info().modelType).toBe('qwen2');
    c.dispose();
    const t = await loadModel(fixtureDir(T5_CASES[0]));
    expect(t).toBeInstanceOf(T5Model);
    t.dispose();
  });
});

describe('dynamic rope_scaling', () => {
  it('is plain RoPE up to max_position_embeddings and HF’s grown base beyond it', async () => {
    const { dir, ref } = await reference(CASES[0]);
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, number>;
    const tmp = await mkdtemp(join(tmpdir(), 'mentor-kd-rope-'));
    const variant = async (name: string, changes: object): Promise<number[]> => {
      const d = join(tmp, name);
      await mkdir(d);
      await writeFile(join(d, 'config.json'), JSON.stringify({ ...config, ...changes }));
      await copyFile(join(dir, 'model.safetensors'), join(d, 'model.safetensors'));
      const m = await CausalLM.load(d);
      const out = await m.forward({ inputIds: ref.input_ids!, attentionMask: ref.attention_mask! }, { returnLogits: true });
      m.dispose();
      return Array.from(out.logits!.data);
    };
    try {
      const T = ref.input_ids!.shape[1]!;
      const plain = await variant('plain', {});
      expect(maxAbsDiff(await variant('dynamic-short', { rope_scaling: { type: 'dynamic', factor: 2 } }), plain)).toBe(0);
      // Beyond max_position_embeddings = 8 the base grows to θ·(f·T/8 − (f − 1))^(d/(d−2)), d = head_dim.
      const d = config.hidden_size! / config.num_attention_heads!;
      const grown = config.rope_theta! * Math.pow((2 * T) / 8 - 1, d / (d - 2));
      const dynamic = await variant('dynamic-long', { rope_scaling: { type: 'dynamic', factor: 2 }, max_position_embeddings: 8 });
      expect(maxAbsDiff(dynamic, plain)).toBeGreaterThan(1e-4);
      expect(maxAbsDiff(dynamic, await variant('grown-theta', { rope_theta: grown }))).toBeLessThan(1e-6);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});

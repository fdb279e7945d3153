/**
 * Decoder-only HF model directories: save/load round trip bit-identical under HF's key set (a tied
 * head left out as HF does), sharded checkpoints with model.safetensors.index.json, bfloat16, and
 * random initialisation from a config.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CausalLM } from '../lib/model/causal-model.js';
import { readSafetensors, writeSafetensors } from '../lib/model/safetensors.js';
import type { Tensor } from '../lib/model/tensor.js';
import { FIXTURES, maxAbsDiff } from './helpers/fixtures.js';
import { bytesOf, expectBadIndexRefused, expectShardedSave, expectUnshardedSave } from './helpers/sharded-checkpoint.js';

const REFERENCE = join(FIXTURES, 'causal-lm-hf-reference');
const CASES = ['llama-tiny-gqa-seed1', 'qwen2-style-tiny-bias-tied-seed3', 'llama-tiny-rope-linear-long-seed4'] as const;
const tmp = await mkdtemp(join(tmpdir(), 'mentor-kd-causal-ckpt-'));
afterAll(async () => rm(tmp, { recursive: true, force: true }));

describe.each(CASES)('round trip: %s', (name) => {
  it('load -> save -> load gives bit-identical tensors under HF names, config and generation config', async () => {
    const src = join(REFERENCE, name);
    const out = join(tmp, name);
    const a = await CausalLM.load(src);
    await a.save(out);
    const hf = await readSafetensors(join(src, 'model.safetensors'));
    const ours = await readSafetensors(join(out, 'model.safetensors'));
    const keys = (JSON.parse(await readFile(join(src, 'reference.json'), 'utf8')) as { model_safetensors_keys: string[] }).model_safetensors_keys;
    expect(Object.keys(ours.tensors).sort()).toEqual([...keys].sort());
    expect(Object.keys(ours.tensors).sort()).toEqual(Object.keys(hf.tensors).sort());
    for (const k of keys) expect(bytesOf(ours.tensors[k]!).equals(bytesOf(hf.tensors[k]!)), k).toBe(true);
    expect(ours.metadata.format).toBe('pt');
    expect(JSON.parse(await readFile(join(out, 'config.json'), 'utf8'))).toEqual(JSON.parse(await readFile(join(src, 'config.json'), 'utf8')));
    expect(JSON.parse(await readFile(join(out, 'generation_config.json'), 'utf8'))).toEqual(
      JSON.parse(await readFile(join(src, 'generation_config.json'), 'utf8')),
    );
    const b = await CausalLM.load(out);
    expect(b.parameterNames()).toEqual(a.parameterNames());
    for (const n of a.parameterNames()) expect(bytesOf(b.getParameter(n)).equals(bytesOf(a.getParameter(n))), n).toBe(true);
    a.dispose();
    b.dispose();
  });
});

describe('sharded checkpoints', () => {
  it('saves shards with model.safetensors.index.json, loads them back, and refuses a damaged index with the same logits', async () => {
    const src = join(REFERENCE, CASES[0]);
    const out = join(tmp, 'sharded');
    const a = await CausalLM.load(src);
    await a.save(out, { maxShardBytes: 32 * 1024 });
    await expectShardedSave(out, a.parameterNames());
    await expectBadIndexRefused((dir) => CausalLM.load(dir), out, tmp);
    const b = await CausalLM.load(out);
    const ref = (await readSafetensors(join(src, 'reference.safetensors'))).tensors as Record<string, Tensor>;
    const batch = { inputIds: ref.input_ids!, attentionMask: ref.attention_mask! };
    const la = await a.forward(batch, { returnLogits: true });
    const lb = await b.forward(batch, { returnLogits: true });
    expect(maxAbsDiff(la.logits!.data, lb.logits!.data)).toBe(0);
    await b.save(out);
    await expectUnshardedSave(out);
    a.dispose();
    b.dispose();
  });

  it('accepts a tied lm_head copy and rotary inv_freq buffers that older checkpoints carry', async () => {
    const src = join(REFERENCE, CASES[1]);
    const out = join(tmp, 'extras');
    const st = await readSafetensors(join(src, 'model.safetensors'));
    await mkdir(out, { recursive: true });
    const invFreq: Tensor = { data: new Float32Array(4).fill(1), shape: [4] };
    await writeSafetensors(
      join(out, 'model.safetensors'),
      { ...st.tensors, 'lm_head.weight': st.tensors['model.embed_tokens.weight']!, 'model.layers.0.self_attn.rotary_emb.inv_freq': invFreq },
      { format: 'pt' },
    );
    await copyFile(join(src, 'config.json'), join(out, 'config.json'));
    const a = await CausalLM.load(src);
    const b = await CausalLM.load(out);
    expect(b.parameterNames()).toEqual(a.parameterNames());
    expect(bytesOf(b.getParameter('model.embed_tokens.weight')).equals(bytesOf(a.getParameter('model.embed_tokens.weight')))).toBe(true);
    a.dispose();
    b.dispose();
  });
});

describe('bfloat16 and fromConfig', () => {
  it('a bfloat16 model follows the float32 one closely and generates', async () => {
    const src = join(REFERENCE, CASES[0]);
    const ref = (await readSafetensors(join(src, 'reference.safetensors'))).tensors as Record<string, Tensor>;
    const m = await CausalLM.load(src, { dtype: 'bfloat16' });
    expect(m.info().dtype).toBe('bfloat16');
    const out = await m.forward({ inputIds: ref.input_ids!, attentionMask: ref.attention_mask!, labels: ref.labels! }, { returnLogits: true, backward: true });
    // bf16 keeps 8 mantissa bits: logits of magnitude ~5 within a few tenths.
    const scale = Math.max(...Array.from(ref.logits!.data as Float32Array, Math.abs));
    expect(maxAbsDiff(out.logits!.data, ref.logits!.data as Float32Array)).toBeLessThan(0.05 * scale);
    expect(Math.abs(out.loss! - (ref.loss!.data as Float32Array)[0]!)).toBeLessThan(0.05);
    expect(m.getGradient('model.norm.weight')).not.toBeNull();
    const gen = await m.generate({ inputIds: ref.gen_input_ids!, attentionMask: ref.gen_attention_mask! }, { maxNewTokens: 4 });
    expect(gen.shape[0]).toBe(3);
    expect(gen.shape[1]).toBeLessThanOrEqual(ref.gen_input_ids!.shape[1]! + 4);
    m.dispose();
  });

  it('fromConfig initialises as HF (norms at one, zero biases, zero pad row) and saves a loadable directory', async () => {
    const config = JSON.parse(await readFile(join(REFERENCE, CASES[1], 'config.json'), 'utf8'));
    const m = await CausalLM.fromConfig(config, { seed: 7 });
    expect(Array.from(m.getParameter('model.norm.weight').data).every((x) => x === 1)).toBe(true);
    expect(Array.from(m.getParameter('model.layers.0.self_attn.q_proj.bias').data).every((x) => x === 0)).toBe(true);
    const emb = m.getParameter('model.embed_tokens.weight');
    const D = emb.shape[1]!;
    expect(Array.from(emb.data.subarray(0, D)).every((x) => x === 0)).toBe(true); // pad_token_id 0
    const std = Math.sqrt(Array.from(emb.data.subarray(D)).reduce((s, x) => s + x * x, 0) / (emb.data.length - D));
    expect(std).toBeGreaterThan(0.25);
    expect(std).toBeLessThan(0.35); // initializer_range 0.3
    const again = await CausalLM.fromConfig(config, { seed: 7 });
    expect(bytesOf(again.getParameter('model.embed_tokens.weight')).equals(bytesOf(emb))).toBe(true);
    const out = join(tmp, 'from-config');
    await m.save(out);
    const back = await CausalLM.load(out);
    expect(bytesOf(back.getParameter('model.embed_tokens.weight')).equals(bytesOf(emb))).toBe(true);
    for (const x of [m, again, back]) x.dispose();
  });
});

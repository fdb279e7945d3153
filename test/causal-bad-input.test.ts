/**
 * Bad input to the decoder-only model: each case is a rejected Promise whose message names the
 * file, tensor or field at fault (config.json fields, checkpoint tensors, batch tensors).
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CausalLM } from '../lib/model/causal-model.js';
import { loadModel } from '../lib/model/auto-model.js';
import { readSafetensors, writeSafetensors } from '../lib/model/safetensors.js';
import type { Tensor } from '../lib/model/tensor.js';
import { FIXTURES } from './helpers/fixtures.js';

const SRC = join(FIXTURES, 'causal-lm-hf-reference', 'llama-tiny-gqa-seed1');
let tmp: string;
let config: Record<string, unknown>;
let weights: Record<string, Tensor>;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'mentor-kd-causal-bad-'));
  config = JSON.parse(await readFile(join(SRC, 'config.json'), 'utf8'));
  weights = (await readSafetensors(join(SRC, 'model.safetensors'))).tensors as Record<string, Tensor>;
});
afterAll(async () => rm(tmp, { recursive: true, force: true }));

/** A model dir with the given config changes and (optionally) other tensors. */
async function modelDir(name: string, changes: Record<string, unknown>, tensors?: Record<string, Tensor>): Promise<string> {
  const dir = join(tmp, name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, ...changes }));
  if (tensors) await writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  else await copyFile(join(SRC, 'model.safetensors'), join(dir, 'model.safetensors'));
  return dir;
}

describe('config.json', () => {
  it('unknown model_type', async () => {
    const dir = await modelDir('mistral', { model_type: 'mistral' });
    await expect(CausalLM.load(dir)).rejects.toThrow(/config\.json: field 'model_type' = 'mistral' is not a supported decoder-only family \(llama, qwen2/);
    await expect(loadModel(dir)).rejects.toThrow(/config\.json: field 'model_type' = 'mistral' is not supported/);
  });

  it('heads not divisible by KV heads', async () => {
    const dir = await modelDir('kv-heads', { num_key_value_heads: 3 });
    await expect(CausalLM.load(dir)).rejects.toThrow(/config\.json: field 'num_attention_heads' = 4 is not divisible by 'num_key_value_heads' = 3/);
  });

  it('hidden size not divisible by heads', async () => {
    const dir = await modelDir('heads', { num_attention_heads: 5, num_key_value_heads: 5 });
    await expect(CausalLM.load(dir)).rejects.toThrow(/config\.json: field 'hidden_size' = 32 is not divisible by 'num_attention_heads' = 5/);
  });

  it('unsupported rope_scaling types are refused by name', async () => {
    const dir = await modelDir('yarn', { rope_scaling: { type: 'yarn', factor: 4 } });
    await expect(CausalLM.load(dir)).rejects.toThrow(/config\.json: field 'rope_scaling\.type' = 'yarn' is not supported \(linear, dynamic/);
    const bad = await modelDir('factor', { rope_scaling: { type: 'linear', factor: 0.5 } });
    await expect(CausalLM.load(bad)).rejects.toThrow(/field 'rope_scaling\.factor' must be > 1/);
  });

  it('more layers in config.json than the checkpoint holds, before allocating', async () => {
    const dir = await modelDir('layers', { num_hidden_layers: 1_000_000 });
    await expect(CausalLM.load(dir)).rejects.toThrow(/config\.json: field 'num_hidden_layers' = 1000000 but the checkpoint holds 3 layers/);
  });

  it('a huge vocabulary is refused against the checkpoint header, naming the tensor and fields', async () => {
    const dir = await modelDir('vocab', { vocab_size: 1_000_000_000 });
    await expect(CausalLM.load(dir)).rejects.toThrow(
      /tensor '(lm_head|model\.embed_tokens)\.weight' has shape \[96, 32\] but config\.json implies \[1000000000, 32\] \(vocab_size = 1000000000/,
    );
  });

  it('a memory budget too small for the parameters is refused before allocating', async () => {
    await expect(CausalLM.load(SRC, { memoryBudgetBytes: 1000 })).rejects.toThrow(
      /config\.json: the model's parameters need about \d+ bytes .* as float32, more than 1000 bytes .* allowed by the memoryBudgetBytes option/,
    );
    const config = JSON.parse(await readFile(join(SRC, 'config.json'), 'utf8'));
    await expect(CausalLM.fromConfig({ ...config, num_hidden_layers: 100_000 }, { memoryBudgetBytes: 1e9 })).rejects.toThrow(/num_hidden_layers 100000/);
  });

  it('non-silu activation', async () => {
    const dir = await modelDir('act', { hidden_act: 'gelu' });
    await expect(CausalLM.load(dir)).rejects.toThrow(/config\.json: field 'hidden_act' = 'gelu' is not supported/);
  });
});

describe('checkpoint tensors', () => {
  it('missing key', async () => {
    const { ['model.layers.1.mlp.up_proj.weight']: _gone, ...rest } = weights;
    const dir = await modelDir('missing', {}, rest);
    await expect(CausalLM.load(dir)).rejects.toThrow(/checkpoint has no tensor 'model\.layers\.1\.mlp\.up_proj\.weight'/);
  });

  it('shape mismatch names the tensor, both shapes and the config fields', async () => {
    const k = weights['model.layers.0.self_attn.k_proj.weight']!;
    const wrong: Tensor = { data: new Float32Array(32 * 32), shape: [32, 32] };
    const dir = await modelDir('shape', {}, { ...weights, 'model.layers.0.self_attn.k_proj.weight': wrong });
    expect(k.shape).toEqual([16, 32]);
    await expect(CausalLM.load(dir)).rejects.toThrow(
      /model\.safetensors: tensor 'model\.layers\.0\.self_attn\.k_proj\.weight' has shape \[32, 32\] but config\.json implies \[16, 32\] \(num_key_value_heads = 2/,
    );
  });

  it('unexpected tensor (a bias the config does not have)', async () => {
    const dir = await modelDir('extra', {}, { ...weights, 'model.layers.0.self_attn.q_proj.bias': { data: new Float32Array(32), shape: [32] } });
    await expect(CausalLM.load(dir)).rejects.toThrow(/unexpected tensor 'model\.layers\.0\.self_attn\.q_proj\.bias' \(not a parameter of a llama model/);
  });
});

describe('batches', () => {
  it('ids >= vocab_size, bad masks and mismatched shapes name the field', async () => {
    const m = await CausalLM.load(SRC);
    try {
      const ids = { data: new Int32Array([2, 5, 96]), shape: [1, 3] };
      await expect(m.forward({ inputIds: ids })).rejects.toThrow(/inputIds contains id 96 >= vocab_size 96/);
      const ok = { data: new Int32Array([2, 5, 7]), shape: [1, 3] };
      await expect(m.forward({ inputIds: ok, labels: { data: new Int32Array([-100, 5, 200]), shape: [1, 3] } })).rejects.toThrow(
        /labels contains id 200 >= vocab_size 96/,
      );
      await expect(m.forward({ inputIds: ok, attentionMask: { data: new Int32Array([1, 1]), shape: [1, 2] } })).rejects.toThrow(
        /attentionMask has shape \[1, 2\] but inputIds has \[1, 3\]/,
      );
      await expect(m.forward({ inputIds: ok, attentionMask: { data: new Int32Array([1, 2, 1]), shape: [1, 3] } })).rejects.toThrow(
        /attentionMask holds values other than 0 and 1/,
      );
      await expect(m.generate({ inputIds: ok, attentionMask: { data: new Int32Array([0, 0, 0]), shape: [1, 3] } })).rejects.toThrow(
        /every prompt needs at least one real/,
      );
      await expect(m.generate({ inputIds: ids })).rejects.toThrow(/inputIds contains id 96 >= vocab_size 96/);
      await expect(m.forward({ inputIds: ok }, { backward: true })).rejects.toThrow(/needs labels/);
      // Still usable after every refusal.
      const out = await m.forward({ inputIds: ok }, { returnLogits: true });
      expect(out.logits!.shape).toEqual([1, 3, 96]);
    } finally {
      m.dispose();
    }
  });
});

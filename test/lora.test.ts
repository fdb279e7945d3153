/**
 * LoRA (native/t5/lora.h, lib/model/lora.ts): adapters in PEFT's format on T5's linear layers.
 * - The trainable parameters are the adapters, r·(in + out) per adapted layer, and only they get
 *   gradients; a fresh adapter (B = 0) leaves the logits equal to the base's, bit for bit.
 * - Merged weights (W + B·A·lora_alpha/r) give the logits of base + adapters (fp32, |Δ| ≤ 1e-4),
 *   through merged(), `merge-lora` and T5Model.load() of an adapter directory; generation
 *   (static and engine) of the adapted model equals the merged model's.
 * - The saved files follow PEFT's documented checkpoint format
 *   (https://huggingface.co/docs/peft/developer_guides/checkpoint): adapter_config.json with
 *   peft_type LORA, r, lora_alpha, lora_dropout, target_modules, base_model_name_or_path,
 *   task_type, and adapter_model.safetensors holding only the adapters under
 *   "base_model.model.<module path>.lora_A.weight" / ".lora_B.weight" (the adapter name
 *   "default" dropped), A [r, in] and B [out, r] as PEFT's nn.Linear layers store them.
 * - train({lora}): the base stays bit-identical, checkpoints hold the adapters (no model
 *   weights), a killed run resumes to the same losses and adapters bit for bit (dropout on in the
 *   model and on the adapters' input), activation checkpointing gives the same gradients (bit for
 *   bit, except k/v adapters on cross-attention: fp32 rounding, see that test).
 * - Bad settings fail in one line naming the field, before any work.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manualSeed } from '../lib/native/index.js';
import { T5Model } from '../lib/model/t5-model.js';
import { tensor } from '../lib/model/tensor.js';
import { readSafetensors } from '../lib/model/safetensors.js';
import { addLora, loadLora, loraInfo, loraParameterNames, mergedModel, mergeLora, saveLora, trainableParameterCount } from '../lib/model/lora.js';
import { loraParameterCount, loraSettingsSchema } from '../lib/model/lora-settings.js';
import { estimateMemory } from '../lib/plan/estimate.js';
import { defaultConfig } from '../lib/config/defaults.js';
import { mergeConfig, validateConfig } from '../lib/config/load.js';
import { collate, listCheckpoints, tokenizeDataset, train, TrainEngine } from '../lib/train/index.js';
import { runStepChild } from './helpers/step-child.js';
import { reversalTask, tinyConfig, toyTokenizer } from './helpers/train-fixtures.js';
import { runCli } from './helpers/cli.js';
import { registerModelCommands } from '../lib/model/cli.js';
import { registerPlanCommand } from '../lib/plan/cli.js';

const work = mkdtempSync(join(tmpdir(), 'mentor-kd-lora-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const tokenizer = toyTokenizer();
const config = tinyConfig({ vocabSize: tokenizer.vocabSize, dropout: 0.1, layers: 2 });
const baseDir = join(work, 'base');
const dataset = tokenizeDataset(reversalTask(8, 5, 2, 6), tokenizer, { maxSourceLength: 16, maxTargetLength: 16 });
const batch = collate(dataset.examples.slice(0, 4), tokenizer.padId);

beforeAll(async () => {
  const m = await T5Model.fromConfig(config, { seed: 4 });
  await m.save(baseDir);
  m.dispose();
});

/** Gives every lora_B non-zero values (a fresh adapter's B is zero), deterministically. */
function perturbB(model: T5Model, scale = 0.05): void {
  let k = 1;
  for (const name of loraParameterNames(model)) {
    if (!name.endsWith('lora_B.weight')) continue;
    const p = model.getParameter(name);
    model.setParameter(
      name,
      tensor(
        Float32Array.from(p.data, () => (((k = (k * 48271) % 2147483647) / 2147483647) * 2 - 1) * scale),
        p.shape,
      ),
    );
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

describe('LoRA adapters', () => {
  it('trainable parameters = the adapters, r·(in + out) per adapted layer; a fresh adapter leaves the logits unchanged; only adapters get gradients', async () => {
    const model = await T5Model.load(baseDir);
    const before = await model.forward(batch, { returnLogits: true });
    const settings = addLora(model, { r: 4, lora_alpha: 16, target_modules: ['q', 'k', 'v', 'o', 'wi_0', 'wi_1', 'wo'] }, 9);
    // By hand for this config (d_model 32, heads·d_kv 32, d_ff 64, 2 + 2 blocks): q,k,v,o occur in
    // 2 encoder + 2·2 decoder attentions, each 4·(32 + 32); wi_0, wi_1 in 4 blocks 4·(32 + 64), wo 4·(64 + 32).
    const byHand = 6 * 4 * 4 * (32 + 32) + 4 * 3 * 4 * (32 + 64);
    expect(loraParameterCount(settings, config as never)).toBe(byHand);
    expect(trainableParameterCount(model)).toBe(byHand);
    expect(estimateMemory({ config: config as never, batch: 2, sourceLength: 8, targetLength: 8, lora: settings }).trainableParameters).toBe(byHand);
    expect(loraInfo(model)).toEqual({ r: 4, lora_alpha: 16, lora_dropout: 0, target_modules: ['q', 'k', 'v', 'o', 'wi_0', 'wi_1', 'wo'] });

    // B = 0 at init: the adapted model is its base, bit for bit; A is kaiming-uniform (|a| ≤ 1/√in).
    const same = await model.forward(batch, { returnLogits: true });
    expect(same.logits!.data).toEqual(before.logits!.data);
    const a = model.getParameter('base_model.model.decoder.block.1.layer.2.DenseReluDense.wo.lora_A.weight');
    expect(a.shape).toEqual([4, 64]);
    expect(Math.max(...Array.from(a.data, Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(64));
    expect(Math.max(...Array.from(a.data, Math.abs))).toBeGreaterThan(0.5 / Math.sqrt(64));

    perturbB(model);
    await model.forward(batch, { train: true, backward: true });
    for (const name of model.parameterNames()) expect(model.getGradient(name), name).toBeNull();
    for (const name of loraParameterNames(model)) expect(model.getGradient(name), name).not.toBeNull();
    model.dispose();
  });

  it('merged weights (W + B·A·lora_alpha/r) give the logits of base + adapters, and generation equals the merged model’s (static and engine)', async () => {
    for (const [ff, targets] of [
      ['gated-gelu', ['q', 'k', 'v', 'o', 'wi_0', 'wi_1', 'wo']],
      ['relu', ['v', 'wi', 'wo']],
    ] as const) {
      const dir = join(work, `base-${ff}`);
      const m0 = await T5Model.fromConfig({ ...config, feed_forward_proj: ff }, { seed: 6 });
      await m0.save(dir);
      m0.dispose();
      const model = await T5Model.load(dir);
      addLora(model, { r: 8, lora_alpha: 32, target_modules: [...targets] }, 3);
      perturbB(model);
      const adapted = await model.forward(batch, { returnLogits: true });
      const base = await T5Model.load(dir);
      const baseLogits = (await base.forward(batch, { returnLogits: true })).logits!.data;
      // The adapters change the output (the comparison below is not trivially true).
      expect(maxAbsDiff(adapted.logits!.data, baseLogits)).toBeGreaterThan(1e-2);

      // One merged weight by hand: W + B·A·(32/8).
      const w = 'encoder.block.0.layer.0.SelfAttention.v.weight';
      const A = model.getParameter(`base_model.model.${w.replace(/\.weight$/, '')}.lora_A.weight`);
      const B = model.getParameter(`base_model.model.${w.replace(/\.weight$/, '')}.lora_B.weight`);
      const W = base.getParameter(w);
      const [out, inF] = W.shape as [number, number];
      const byHand = new Float32Array(out * inF);
      for (let i = 0; i < out; i++)
        for (let j = 0; j < inF; j++) {
          let s = 0;
          for (let k = 0; k < 8; k++) s += B.data[i * 8 + k]! * A.data[k * inF + j]!;
          byHand[i * inF + j] = W.data[i * inF + j]! + s * 4;
        }

      // merged(), merge-lora's output directory, and loading the adapter directory itself.
      const adapterDir = join(work, `adapter-${ff}`);
      await saveLora(model, adapterDir);
      const mergedDir = join(work, `merged-${ff}`);
      await mergeLora({ base: dir, adapter: adapterDir, output: mergedDir });
      expect(existsSync(join(mergedDir, 'model.safetensors'))).toBe(true);
      for (const merged of [await mergedModel(model), await T5Model.load(mergedDir), await T5Model.load(adapterDir)]) {
        expect(loraInfo(merged)).toBeNull();
        expect(maxAbsDiff(merged.getParameter(w).data, byHand)).toBeLessThan(1e-6);
        const logits = (await merged.forward(batch, { returnLogits: true })).logits!.data;
        expect(maxAbsDiff(logits, adapted.logits!.data), ff).toBeLessThan(1e-4);
        // Generation of the adapted model runs on a merged copy: the same tokens.
        const opts = { maxNewTokens: 6 };
        expect(Array.from((await merged.generate(batch, opts)).data)).toEqual(Array.from((await model.generate(batch, opts)).data));
        expect(Array.from((await merged.native.generate(batch, opts)).data)).toEqual(Array.from((await model.native.generate(batch, opts)).data));
        merged.dispose();
      }
      base.dispose();
      model.dispose();
    }
  });

  it("saves PEFT's format: adapter_config.json fields and adapter_model.safetensors key names and shapes", async () => {
    const model = await T5Model.load(baseDir);
    addLora(model, { r: 2, lora_alpha: 4, lora_dropout: 0.05, target_modules: ['q', 'v'] }, 1);
    const dir = join(work, 'peft-format');
    await saveLora(model, dir);
    const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg).toMatchObject({
      peft_type: 'LORA',
      task_type: 'SEQ_2_SEQ_LM',
      r: 2,
      lora_alpha: 4,
      lora_dropout: 0.05,
      target_modules: ['q', 'v'],
      bias: 'none',
      fan_in_fan_out: false,
      use_rslora: false,
      use_dora: false,
      modules_to_save: null,
      base_model_name_or_path: baseDir,
    });
    const { tensors } = await readSafetensors(join(dir, 'adapter_model.safetensors'));
    const keys = Object.keys(tensors).sort();
    // q and v in 2 encoder self-attentions and 2·2 decoder attentions, lora_A and lora_B each.
    expect(keys).toHaveLength(2 * 6 * 2);
    for (const k of keys)
      expect(k).toMatch(
        /^base_model\.model\.(encoder\.block\.[01]\.layer\.0\.SelfAttention|decoder\.block\.[01]\.layer\.[01]\.(SelfAttention|EncDecAttention))\.[qv]\.lora_[AB]\.weight$/,
      );
    expect(keys).toContain('base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight');
    expect(keys).toContain('base_model.model.decoder.block.1.layer.1.EncDecAttention.v.lora_B.weight');
    expect(tensors['base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight']!.shape).toEqual([2, 32]);
    expect(tensors['base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_B.weight']!.shape).toEqual([32, 2]);
    // A round trip through loadLora gives the same adapters.
    const again = await T5Model.load(baseDir);
    await loadLora(again, dir);
    expect(loraInfo(again)).toEqual(loraInfo(model));
    for (const k of keys) expect(again.getParameter(k).data).toEqual(model.getParameter(k).data);
    again.dispose();
    model.dispose();
  });

  it('activation checkpointing gives the same loss and adapter gradients, with lora_dropout on (bitwise; k, v: to fp32 rounding)', async () => {
    const run = async (model: T5Model, mode: 'none' | 'blocks') => {
      model.zeroGrad();
      manualSeed(5);
      const r = await model.forward(batch, { train: true, backward: true, activationCheckpointing: mode });
      return { loss: r.loss!, grads: loraParameterNames(model).map((n) => model.getGradient(n)!.data) };
    };
    // Every adapter whose input is computed inside its block: bit for bit.
    const model = await T5Model.load(baseDir);
    addLora(model, { r: 4, lora_alpha: 8, lora_dropout: 0.2, target_modules: ['q', 'o', 'wi_0', 'wi_1', 'wo'] }, 2);
    perturbB(model);
    const plain = await run(model, 'none');
    const ck = await run(model, 'blocks');
    expect(ck.loss).toBe(plain.loss);
    expect(ck.grads.map((g) => Array.from(g))).toEqual(plain.grads.map((g) => Array.from(g)));
    // lora_dropout really acts: another seed, another loss.
    manualSeed(6);
    expect((await model.forward(batch, { train: true })).loss).not.toBe(plain.loss);
    model.dispose();
    // k, v adapters also read the encoder output in every decoder block's cross-attention: a
    // checkpointed block returns its own sum of their gradients for it, so the sum over blocks is
    // associated differently than in one backward — equal to fp32 rounding, not bit for bit.
    const kv = await T5Model.load(baseDir);
    addLora(kv, { r: 4, lora_alpha: 8, lora_dropout: 0.2, target_modules: ['k', 'v'] }, 2);
    perturbB(kv);
    const a = await run(kv, 'none');
    const b = await run(kv, 'blocks');
    expect(b.loss).toBe(a.loss);
    a.grads.forEach((g, i) => {
      const scale = Math.max(...Array.from(g, Math.abs));
      expect(maxAbsDiff(g, b.grads[i]!)).toBeLessThanOrEqual(1e-5 * scale);
    });
    kv.dispose();
  });
});

const runChild = (settings: Record<string, unknown>, killAtStep?: number) => runStepChild('lora-train-child.ts', { base: baseDir, ...settings }, killAtStep);

describe('training with LoRA', () => {
  it('a killed LoRA run resumes to the same losses and adapters bit for bit; checkpoints hold adapters only; the base is untouched', async () => {
    const steps = 10;
    const full = await runChild({ output_dir: join(work, 'run-full'), max_steps: steps, save_steps: 4 });
    expect(full.code, full.stderr).toBe(0);
    expect(full.losses.size).toBe(steps);
    expect(full.losses.get(steps)!).toBeLessThan(full.losses.get(1)!);

    const dir = join(work, 'run-killed');
    const killed = await runChild({ output_dir: dir, max_steps: steps, save_steps: 4, slowAfter: 4 }, 6);
    expect(killed.signal).toBe('SIGKILL');
    expect((await listCheckpoints(dir)).map((c) => c.step)).toEqual([4]);
    const resumed = await runChild({ output_dir: dir, max_steps: steps, save_steps: 4, resume_from_checkpoint: true });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect([...resumed.losses.keys()]).toEqual([5, 6, 7, 8, 9, 10]);
    for (const [s, loss] of resumed.losses) expect(Object.is(loss, full.losses.get(s)), `step ${s}: ${loss} vs ${full.losses.get(s)}`).toBe(true);

    // A checkpoint: PEFT's two files plus config.json (architecture check), optimizer and RNG; no model weights.
    const ck = join(dir, 'checkpoint-10');
    for (const f of ['adapter_config.json', 'adapter_model.safetensors', 'config.json', 'optimizer.safetensors', 'rng_state.safetensors'])
      expect(existsSync(join(ck, f)), f).toBe(true);
    expect(existsSync(join(ck, 'model.safetensors'))).toBe(false);
    const a = await readSafetensors(join(ck, 'adapter_model.safetensors'));
    const b = await readSafetensors(join(work, 'run-full', 'checkpoint-10', 'adapter_model.safetensors'));
    for (const k of Object.keys(b.tensors)) expect(Array.from(a.tensors[k]!.data as Float32Array), k).toEqual(Array.from(b.tensors[k]!.data as Float32Array));
    // The optimizer holds state for the adapters only.
    const opt = await readSafetensors(join(ck, 'optimizer.safetensors'));
    expect(Object.keys(opt.tensors).every((k) => k.includes('.lora_'))).toBe(true);
    // Loading the checkpoint gives the base with the trained adapters merged in: base weights that
    // no adapter touches are the base's bit for bit.
    const merged = await T5Model.load(ck);
    const base = await T5Model.load(baseDir);
    expect(merged.getParameter('encoder.block.0.layer.0.SelfAttention.k.weight').data).toEqual(
      base.getParameter('encoder.block.0.layer.0.SelfAttention.k.weight').data,
    );
    expect(
      maxAbsDiff(
        merged.getParameter('encoder.block.0.layer.0.SelfAttention.q.weight').data,
        base.getParameter('encoder.block.0.layer.0.SelfAttention.q.weight').data,
      ),
    ).toBeGreaterThan(0);
    merged.dispose();
    base.dispose();
  }, 240_000);

  it('LoRA training with activation checkpointing (blocks) follows the same losses (to fp32 rounding: cross-attention v adapters)', async () => {
    const steps = 6;
    const ck = await runChild({ output_dir: join(work, 'ck-blocks'), max_steps: steps, save_steps: 3, activationCheckpointing: 'blocks' });
    expect(ck.code, ck.stderr).toBe(0);
    const plain = await runChild({ output_dir: join(work, 'ck-plain'), max_steps: steps, save_steps: 3 });
    expect(plain.code, plain.stderr).toBe(0);
    expect(ck.losses.size).toBe(steps);
    for (const [s, loss] of ck.losses) expect(Math.abs(loss - plain.losses.get(s)!), `step ${s}`).toBeLessThan(1e-5 * loss);
  }, 240_000);
});

describe('a bf16 base', () => {
  it('stays bf16 and frozen while the fp32 adapters train', async () => {
    const model = await T5Model.load(baseDir, { dtype: 'bfloat16' });
    addLora(model, { r: 4, lora_alpha: 8, target_modules: ['q', 'v', 'wo'] }, 1);
    const w = 'encoder.block.0.layer.0.SelfAttention.q.weight';
    const a = 'base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_B.weight';
    const before = { w: Array.from(model.getParameter(w).data), a: Array.from(model.getParameter(a).data) };
    const engine = await TrainEngine.create(model, { learning_rate: 1e-2, seed: 1 });
    const r = await engine.step([{ ...batch, exampleIds: [] }]);
    expect(Number.isFinite(r.loss)).toBe(true);
    engine.dispose();
    expect(model.info().dtype).toBe('bfloat16');
    expect(Array.from(model.getParameter(w).data)).toEqual(before.w);
    expect(Array.from(model.getParameter(a).data)).not.toEqual(before.a);
    model.dispose();
  });
});

describe('the command line', () => {
  it('mentor-kd model merge-lora writes a loadable plain model; mentor-kd plan --lora counts adapters only', async () => {
    const model = await T5Model.load(baseDir);
    addLora(model, { r: 4, lora_alpha: 8, target_modules: ['q', 'v'] }, 1);
    perturbB(model);
    const adapted = (await model.forward(batch, { returnLogits: true })).logits!.data;
    const adapterDir = join(work, 'cli-adapter');
    await saveLora(model, adapterDir);
    const out = join(work, 'cli-merged');
    const merged = await runCli(registerModelCommands, ['model', 'merge-lora', '--base', baseDir, '--adapter', adapterDir, '--output', out]);
    expect(merged.stdout.join('\n')).toMatch(/merge-lora: .*cli-adapter \(r 4, lora_alpha 8, q, v\) merged into .*base -> .*cli-merged/);
    const plain = await T5Model.load(out);
    expect(loraInfo(plain)).toBeNull();
    expect(maxAbsDiff((await plain.forward(batch, { returnLogits: true })).logits!.data, adapted)).toBeLessThan(1e-4);
    plain.dispose();
    model.dispose();

    const plan = await runCli(registerPlanCommand, [
      'plan',
      '--preset',
      'flan-t5-large',
      '--batch',
      '2',
      '--source-len',
      '256',
      '--target-len',
      '128',
      '--lora',
      '--lora-r',
      '16',
      '--memory',
      '24GiB',
    ]);
    const text = plan.stdout.join('\n');
    // r·(in + out) over q and v of 24 encoder and 2·24 decoder attentions: 16·2048·72·2.
    expect(text).toMatch(/LoRA r=16 on q,v: 783\.2 M parameters \(4\.7 M trainable\)/);
    expect(text).toMatch(/gradients\s+18\.0 MiB/); // 4,718,592 fp32 gradients
    expect(text).toMatch(/optimizer \(AdamW\)\s+36\.0 MiB/);
    await expect(runCli(registerPlanCommand, ['plan', '--preset', 'flan-t5-large', '--lora', 'q,wi', '--memory', '24GiB'])).rejects.toThrow(
      /plan: lora\.target_modules: this model has no 'wi'/,
    );
    await expect(runCli(registerPlanCommand, ['plan', '--preset', 'flan-t5-large', '--lora', '--lora-r', '0', '--memory', '24GiB'])).rejects.toThrow(
      /plan: --lora: r must be an integer >= 1, got 0/,
    );
  });
});

describe('bad LoRA settings', () => {
  it('fail in one line naming the field, before any work', async () => {
    const model = await T5Model.load(baseDir);
    const run = (lora: unknown) =>
      train({ model, tokenizer, train: reversalTask(4, 1), output_dir: join(work, 'bad'), max_steps: 1, progress: false, lora: lora as never });
    await expect(run({ r: 0 })).rejects.toThrow(/^train: lora\.r must be an integer >= 1, got 0$/);
    await expect(run({ lora_alpha: -1 })).rejects.toThrow(/^train: lora\.lora_alpha must be > 0, got -1$/);
    await expect(run({ target_modules: ['q', 'query'] })).rejects.toThrow(
      /train: lora\.target_modules\.1 must name T5 linear layers \(q, k, v, o, wi, wi_0, wi_1, wo\), got "query"/,
    );
    await expect(run({ target_modules: [] })).rejects.toThrow(/train: lora\.target_modules must list one or more/);
    await expect(run({ rank: 4 })).rejects.toThrow(/train: unknown option 'lora\.rank'/);
    // A module this (gated) model lacks.
    await expect(run({ target_modules: ['q', 'wi'] })).rejects.toThrow(
      /^train: lora\.target_modules: this model has no 'wi' \(its feed_forward_proj gated-gelu is gated: wi_0 and wi_1\)$/,
    );
    // Nothing was attached or written by the failed calls.
    expect(loraInfo(model)).toBeNull();
    expect(existsSync(join(work, 'bad'))).toBe(false);
    // A model built from a config has no base directory for its adapter checkpoints to name.
    const fresh = await T5Model.fromConfig(config, { seed: 1 });
    await expect(
      train({ model: fresh, tokenizer, train: reversalTask(4, 1), output_dir: join(work, 'bad2'), max_steps: 1, progress: false, lora: {} }),
    ).rejects.toThrow(/train: lora needs a base model loaded from a directory/);
    // The native check names the field too (a relu model has no wi_0).
    const relu = await T5Model.fromConfig({ ...config, feed_forward_proj: 'relu' }, { seed: 1 });
    expect(() => relu.native.addLora({ r: 2, lora_alpha: 2, lora_dropout: 0, target_modules: ['wi_0'], seed: 0, field: 'student.train.lora' })).toThrow(
      /^student\.train\.lora\.target_modules: this model has no 'wi_0'/,
    );
    expect(() => addLora(relu, { r: 2, target_modules: ['q'] }, 0)).not.toThrow();
    expect(() => addLora(relu, { r: 2, target_modules: ['q'] }, 0)).toThrow(/lora: this model already has LoRA adapters/);
    for (const m of [model, fresh, relu]) m.dispose();
  });

  it('run config: mentor.train.lora is validated by the one schema, naming its path', () => {
    const withLora = (lora: unknown, init?: unknown) => {
      const c = mergeConfig(defaultConfig(), { output_dir: '/tmp/mentor-kd-lora-config', mentor: { train: { lora } } });
      return init ? { ...c, mentor: { ...c.mentor, init } } : c;
    };
    expect(() => validateConfig(withLora({ r: 0 }, { model_name_or_path: baseDir }))).toThrow(/mentor\.train\.lora\.r: must be an integer >= 1, got 0/);
    expect(() => validateConfig(withLora({ r: 8, targets: ['q'] }, { model_name_or_path: baseDir }))).toThrow(/mentor\.train\.lora\.targets: unknown setting/);
    expect(() => validateConfig(withLora({ r: 8 }))).toThrow(/mentor\.train\.lora: needs mentor\.init\.model_name_or_path/);
    const ok = validateConfig(withLora({ r: 16, lora_alpha: 32 }, { model_name_or_path: baseDir }));
    // PEFT's defaults for what is not given (lora_dropout 0; target_modules q, v for T5).
    expect(ok.mentor.train.lora).toEqual({ r: 16, lora_alpha: 32, lora_dropout: 0, target_modules: ['q', 'v'] });
    expect(loraSettingsSchema.parse({})).toEqual({ r: 8, lora_alpha: 8, lora_dropout: 0, target_modules: ['q', 'v'] });
  });

  it('adapter directories with options that are not plain LoRA are refused by name', async () => {
    const model = await T5Model.load(baseDir);
    addLora(model, { r: 2, target_modules: ['q'] }, 1);
    const dir = join(work, 'dora');
    await saveLora(model, dir);
    const cfgPath = join(dir, 'adapter_config.json');
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
    const target = await T5Model.load(baseDir);
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, use_dora: true }));
    await expect(loadLora(target, dir)).rejects.toThrow(/adapter_config\.json: field 'use_dora' is set; mentor-kd reads plain LoRA adapters only/);
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, r: 3 }));
    await expect(loadLora(target, dir)).rejects.toThrow(
      /tensor 'base_model\.model\.encoder\.block\.0\.layer\.0\.SelfAttention\.q\.lora_A\.weight' has shape \[2, 32\] but r = 3/,
    );
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, target_modules: ['q', 'wi'] }));
    await expect(loadLora(target, dir)).rejects.toThrow(/lora\.target_modules: this model has no 'wi'/);
    expect(loraInfo(target)).toBeNull();
    await expect(mergeLora({ base: baseDir, adapter: baseDir, output: join(work, 'nope') })).rejects.toThrow(/has no adapter_config\.json/);
    model.dispose();
    target.dispose();
  });
});

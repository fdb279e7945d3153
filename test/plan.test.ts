/**
 * The memory planner (lib/plan): parameter counts equal the native model's, the parts respond to
 * the settings as the forward's saved tensors say they should, `mentor-kd plan` prints a verdict
 * (exit code 1 when it does not fit), and train()'s warning names the setting to change.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { T5Model } from '../lib/model/t5-model.js';
import { countParameters, estimateMemory, formatBytes, MODEL_PRESETS, parseBytes, registerPlanCommand, trainingMemoryWarning } from '../lib/plan/index.js';
import { CPU_RESIDENT_HEADROOM } from '../lib/plan/warn.js';
import { tinyConfig } from './helpers/train-fixtures.js';
import { runCli } from './helpers/cli.js';

const BASE = { config: MODEL_PRESETS['flan-t5-base'], batch: 8, sourceLength: 512, targetLength: 256 };

describe('memory planner', () => {
  afterEach(() => {
    process.exitCode = 0;
  });

  it('counts the parameters the native model allocates (gated/relu, tied/untied) and HF FlanT5 sizes', async () => {
    for (const [ff, tied] of [
      ['gated-gelu', false],
      ['relu', true],
    ] as const) {
      const config = { ...tinyConfig({ vocabSize: 60, tied, layers: 3 }), feed_forward_proj: ff };
      const model = await T5Model.fromConfig(config, { seed: 0 });
      expect(countParameters(config as never)).toBe(model.info().numParameters);
      model.dispose();
    }
    // HF's model cards: 77 M, 248 M, 783 M, 2.85 B.
    expect((countParameters(MODEL_PRESETS['flan-t5-small']) / 1e6).toFixed(1)).toBe('77.0');
    expect((countParameters(MODEL_PRESETS['flan-t5-base']) / 1e6).toFixed(1)).toBe('247.6');
    expect((countParameters(MODEL_PRESETS['flan-t5-large']) / 1e6).toFixed(1)).toBe('783.2');
    expect((countParameters(MODEL_PRESETS['flan-t5-xl']) / 1e9).toFixed(2)).toBe('2.85');
  });

  it('weights, gradients and AdamW state follow the dtype; activations follow batch, lengths and checkpointing', () => {
    const fp32 = estimateMemory(BASE);
    expect(fp32.weightBytes).toBe(4 * fp32.parameters);
    expect(fp32.gradientBytes).toBe(4 * fp32.parameters);
    expect(fp32.optimizerBytes).toBe(8 * fp32.parameters);
    const bf16 = estimateMemory({ ...BASE, dtype: 'bfloat16' });
    expect(bf16.weightBytes).toBe(2 * fp32.parameters);
    expect(bf16.optimizerBytes).toBe(12 * fp32.parameters); // two fp32 moments + fp32 masters
    expect(bf16.activationBytes).toBeLessThan(fp32.activationBytes);
    // Saved activations are linear in the batch (the transient logits chunk is not).
    const twice = estimateMemory({ ...BASE, batch: 16 });
    expect(twice.activationParts.encoder).toBe(2 * fp32.activationParts.encoder);
    expect(twice.activationParts.decoder).toBe(2 * fp32.activationParts.decoder);
    // Checkpointing every block keeps one residual stream per block; every-2 sits between.
    const blocks = estimateMemory({ ...BASE, activationCheckpointing: 'blocks' });
    const every2 = estimateMemory({ ...BASE, activationCheckpointing: 'every-2' });
    expect(blocks.activationParts.encoder).toBe(12 * 8 * 512 * 768 * 4);
    expect(blocks.activationBytes).toBeLessThan(0.2 * fp32.activationBytes);
    expect(every2.activationBytes).toBeGreaterThan(blocks.activationBytes);
    expect(every2.activationBytes).toBeLessThan(fp32.activationBytes);
    // Backward's transient: with blocks the first block backward reaches is recomputed on top of
    // everything kept; with every-2 over 12 blocks that last block is not checkpointed, and its freed
    // activations make room for the first recomputation — only the weight copies are counted; every-11
    // checkpoints blocks 0 and 11, so the recomputed block counts in full again.
    const every11 = estimateMemory({ ...BASE, activationCheckpointing: 'every-11' });
    const transientBeyond = (e: typeof fp32) => e.activationParts.transient - fp32.activationParts.transient;
    const decoderCopies = (5 * 768 * 768 + 2 * 2048 * 768) * 4; // q|k|v, cross k|v, wi_0|wi_1 of one decoder block, fp32
    expect(transientBeyond(every2)).toBe(decoderCopies);
    expect(transientBeyond(blocks)).toBeGreaterThan(4 * decoderCopies);
    expect(transientBeyond(every11)).toBe(transientBeyond(blocks));
    expect(blocks.weightBytes + blocks.gradientBytes + blocks.optimizerBytes).toBe(fp32.weightBytes + fp32.gradientBytes + fp32.optimizerBytes);
    // Data parallelism: a replica per rank, plus two buckets in flight; the gradients are views of the reducer's
    // buckets, not a second copy (hand-computed per stage in the sharding test below).
    expect(estimateMemory({ ...BASE, ranks: 2 }).totalBytes - fp32.totalBytes).toBe(2 * 25 * 2 ** 20);
    expect(() => estimateMemory({ ...BASE, batch: 0 })).toThrow('plan: batch must be a positive integer, got 0');
    expect(() => estimateMemory({ ...BASE, activationCheckpointing: 'every-0' as never })).toThrow(/activationCheckpointing must be none, blocks or every-<k>/);
  });

  it("backward frees each block's activations as it writes that block's gradients: counted once (hand-computed bytes)", () => {
    // One encoder and one decoder block; D 4, I 2·2, F 8 (gated), batch 1, 2 source / 2 target tokens, fp32.
    const config = { vocab_size: 10, d_model: 4, d_kv: 2, d_ff: 8, num_layers: 1, num_heads: 2, feed_forward_proj: 'gated-gelu', dropout_rate: 0.1 };
    const tiny = { config, batch: 1, sourceLength: 2, targetLength: 2 };
    const e = estimateMemory(tiny);
    // Saved per block (header of lib/plan/estimate.ts): encoder 2·(4D + 4I + 4F)·4 + 2·1·2·2·2·4 (probabilities and their
    // dropped copy) = 576; decoder (2·(6D + 6I + 4F) + 2·2·I)·4 + 2·64 = 832; fused weight copies (3·I·D + 2·F·D)·4 = 448
    // and (5·I·D + 2·F·D)·4 = 576.
    expect(e.activationParts).toMatchObject({ encoder: 576, decoder: 832, weightCopies: 448 + 576 });
    // Block gradients: encoder (q,k,v,o 4·I·D + wi_0,wi_1,wo 3·F·D + 2 norms)·4 = 672, decoder (8·I·D + 3·F·D + 3·D)·4 = 944.
    // Backward's peak is at its start (every block's activations, 1024 + 1408 bytes): all 1616 bytes of block
    // gradients are written into memory the blocks' activations freed.
    expect(e.overlapBytes).toBe(672 + 944);
    expect(e.totalBytes).toBe(e.weightBytes + e.gradientBytes + e.optimizerBytes + e.activationBytes + e.runtimeBytes - 1616);
    // Checkpointing every block: each keeps its input (B·L·D·4 = 32 bytes); the peak is at backward's end (all
    // gradients), so what overlaps is the 64 bytes of block inputs.
    expect(estimateMemory({ ...tiny, activationCheckpointing: 'blocks' }).overlapBytes).toBe(64);
    // LoRA (the block gradients are the adapters') keeps the plain sum; data parallelism trades the same way.
    expect(estimateMemory({ ...tiny, lora: { r: 2, lora_alpha: 4, lora_dropout: 0, target_modules: ['q', 'v'] } }).overlapBytes).toBe(0);
    expect(estimateMemory({ ...tiny, ranks: 2 }).overlapBytes).toBe(672 + 944);
  });

  it("data parallelism: the gradients are views of the reducer's buckets; zero1/zero2 halve AdamW, zero2 the kept gradients and holds three buckets (hand-computed bytes)", () => {
    // The tiny model of the test above: 10·4 embedding + encoder block (4·I·D 64 + 3·F·D 96 + 2·D 8 = 168) + decoder block
    // (8·I·D 128 + 96 + 3·D 12 = 236) + 2·32 buckets·2 heads position biases 128 + 2 final norms 8 = 580 parameters, fp32.
    const config = { vocab_size: 10, d_model: 4, d_kv: 2, d_ff: 8, num_layers: 1, num_heads: 2, feed_forward_proj: 'gated-gelu', dropout_rate: 0.1 };
    const tiny = { config, batch: 1, sourceLength: 2, targetLength: 2 };
    const one = estimateMemory(tiny);
    expect(one.parameters).toBe(580);
    expect(one.reducerBytes).toBe(0);
    const inFlight = 2 * 25 * 2 ** 20;
    const none = estimateMemory({ ...tiny, ranks: 2, sharding: 'none' });
    const zero1 = estimateMemory({ ...tiny, ranks: 2, sharding: 'zero1' });
    const zero2 = estimateMemory({ ...tiny, ranks: 2, sharding: 'zero2' });
    // none (DDP): the gradients (4·580 = 2320 bytes) live in the buckets (no second copy), AdamW 8·580 = 4640;
    // backward still trades the blocks' activations for their gradients (1616, as on one process).
    expect([none.gradientBytes, none.reducerBytes, none.optimizerBytes, none.overlapBytes]).toEqual([2320, 0, 4640, 1616]);
    expect(none.totalBytes).toBe(one.totalBytes + inFlight);
    // zero1: AdamW halved (2320), gradients as DDP.
    expect([zero1.gradientBytes, zero1.reducerBytes, zero1.optimizerBytes]).toEqual([2320, 0, 2320]);
    expect(zero1.totalBytes).toBe(none.totalBytes - 2320);
    // zero2: backward's gradients move into the buckets as they are written and each bucket is freed once reduced; the
    // rank keeps its half of the sum (1160) for the update. Beside the two buckets in flight it holds those backward
    // fills (one waiting for a layer-norm gradient, the next): 2 · 25 MiB, at most every gradient (2320). No full
    // gradient is held, so none trades against the activations.
    expect([zero2.gradientBytes, zero2.reducerBytes, zero2.optimizerBytes, zero2.overlapBytes]).toEqual([1160, 2320, 2320, 0]);
    expect(zero2.totalBytes).toBe(580 * 4 + 1160 + 2320 + 2320 + one.activationBytes + one.runtimeBytes + inFlight);
    // With 256-byte buckets: two in flight (512) and two being filled (512; the largest tensor, the 10·4 embedding, is
    // 160 bytes).
    const small = estimateMemory({ ...tiny, ranks: 2, sharding: 'zero2', bucketBytes: 256 });
    expect([small.reducerBytes, small.communicationBytes]).toEqual([512, 512]);
    expect(small.totalBytes).toBe(580 * 4 + 1160 + 512 + 2320 + one.activationBytes + one.runtimeBytes + 512);
    // A tensor above bucketBytes is a bucket of its own: with 128-byte buckets the embedding (160) and a bucket (128).
    expect(estimateMemory({ ...tiny, ranks: 2, sharding: 'zero2', bucketBytes: 128 }).reducerBytes).toBe(160 + 128);
  });

  it('sizes: parse and format', () => {
    expect(parseBytes('24GiB', '--memory')).toBe(24 * 2 ** 30);
    expect(parseBytes('1.5 GB', '--memory')).toBe(1.5e9);
    expect(parseBytes('123', '--memory')).toBe(123);
    expect(() => parseBytes('lots', '--memory')).toThrow('--memory must be a size such as 24GiB, 1.5GB or 800MiB, got "lots"');
    expect(formatBytes(3 * 2 ** 30)).toBe('3.00 GiB');
  });

  it('mentor-kd plan: a preset, a model directory and a run config; the verdict sets the exit code', async () => {
    const fits = await runCli(registerPlanCommand, [
      'plan',
      '--preset',
      'flan-t5-base',
      '--batch',
      '8',
      '--source-len',
      '512',
      '--target-len',
      '256',
      '--memory',
      '64GiB',
    ]);
    const text = fits.stdout.join('\n');
    expect(text).toMatch(/flan-t5-base: batch 8, 512\/256 tokens, 1 rank\(s\), float32, checkpointing none: 247\.6 M parameters/);
    expect(text).toMatch(/optimizer \(AdamW\)\s+1\.84 GiB/);
    expect(text).toMatch(/fits in 64\.00 GiB \(--memory\)/);
    expect(process.exitCode ?? 0).toBe(0);

    const tight = await runCli(registerPlanCommand, ['plan', '--preset', 'flan-t5-base', '--source-len', '512', '--target-len', '256', '--memory', '6GiB']);
    expect(tight.stdout.join('\n')).toMatch(/does NOT fit in 6\.00 GiB \(--memory\): .* short/);
    expect(process.exitCode).toBe(1);
    process.exitCode = 0;
    const ck = await runCli(registerPlanCommand, [
      'plan',
      '--preset',
      'flan-t5-base',
      '--source-len',
      '512',
      '--target-len',
      '256',
      '--memory',
      '6GiB',
      '--checkpointing',
      'blocks',
    ]);
    expect(ck.stdout.join('\n')).toMatch(/checkpointing blocks: .*[\s\S]*fits in 6\.00 GiB/);
    expect(process.exitCode ?? 0).toBe(0);

    const dir = mkdtempSync(join(tmpdir(), 'mkd-plan-'));
    try {
      writeFileSync(join(dir, 'config.json'), JSON.stringify(MODEL_PRESETS['flan-t5-small']));
      const m = await runCli(registerPlanCommand, ['plan', '--model', dir, '--memory', '64GiB']);
      expect(m.stdout.join('\n')).toMatch(/77\.0 M parameters/);
      writeFileSync(
        join(dir, 'run.yaml'),
        [
          'output_dir: out',
          'task: coin_flip',
          'data: {synthetic: {train: 10, dev: 2, test: 2, size: 4}}',
          'teacher: {model: t, embedded: {errorRate: 0, latencyMs: 0}}',
          'tokenizer: {vocabSize: 400}',
          'mentor: {init: {config: {d_model: 128, d_kv: 32, d_ff: 256, num_layers: 2, num_heads: 4}}, train: {max_steps: 1, activationCheckpointing: blocks}}',
          'student: {init: {config: {d_model: 64, d_kv: 16, d_ff: 128, num_layers: 2, num_heads: 4}}, train: {max_steps: 1, per_device_train_batch_size: 4}}',
        ].join('\n'),
      );
      const r = await runCli(registerPlanCommand, ['plan', '--config', join(dir, 'run.yaml'), '--memory', '8GiB']);
      const out = r.stdout.join('\n');
      expect(out).toMatch(/mentor \(.*run\.yaml\): batch 8, 512\/512 tokens, 1 rank\(s\), float32, checkpointing blocks/);
      expect(out).toMatch(/student \(.*run\.yaml\): batch 4, 512\/512 tokens, 1 rank\(s\), float32, checkpointing none/);
      await expect(runCli(registerPlanCommand, ['plan', '--preset', 'flan-t5-base', '--checkpointing', 'all'])).rejects.toThrow(
        'plan: --checkpointing must be none, blocks or every-<k> (k >= 1), got "all"',
      );
      await expect(runCli(registerPlanCommand, ['plan', '--preset', 'flan-t5-huge'])).rejects.toThrow(/unknown --preset "flan-t5-huge"/);
      await expect(runCli(registerPlanCommand, ['plan', '--model', join(dir, 'nowhere')])).rejects.toThrow(/config\.json is missing/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("train()'s warning: null when the plan fits, a line naming the setting to change when it does not", () => {
    const shape = { batch: 8, longestSource: 512, longestTarget: 256, ranks: 1, bf16: false, activationCheckpointing: 'none' as const };
    expect(trainingMemoryWarning(MODEL_PRESETS['flan-t5-base'], shape, 64 * 2 ** 30)).toBeNull();
    const w = trainingMemoryWarning(MODEL_PRESETS['flan-t5-base'], shape, 4 * 2 ** 30)!;
    expect(w).toMatch(/^mentor-kd: warning: training may not fit in memory: the plan needs 12\.\d\d GiB per rank/);
    expect(w).toContain('but 4.00 GiB is available; set activationCheckpointing: blocks');
    // Between the tensors and what a CPU process may hold resident: still a warning, naming both.
    const total = estimateMemory({ config: MODEL_PRESETS['flan-t5-base'], batch: 8, sourceLength: 512, targetLength: 256 }).totalBytes;
    expect(CPU_RESIDENT_HEADROOM).toBeGreaterThan(1);
    const between = trainingMemoryWarning(MODEL_PRESETS['flan-t5-base'], shape, Math.round((total * (1 + CPU_RESIDENT_HEADROOM)) / 2))!;
    expect(between).toContain(`up to ${formatBytes(total * CPU_RESIDENT_HEADROOM)} resident: glibc keeps freed blocks`);
    expect(trainingMemoryWarning(MODEL_PRESETS['flan-t5-base'], shape, Math.round(total * (CPU_RESIDENT_HEADROOM + 0.01)))).toBeNull();
  });
});

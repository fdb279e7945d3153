/**
 * The model, generation, the train step and the NCCL group on CUDA. Runs only where the addon was
 * built against a CUDA libtorch and a GPU is visible (scripts/device/gpu-check.sh on the GPU
 * machine); otherwise every test reports itself skipped, with the reason printed.
 *
 * Tolerances: the fixtures' README gives 5e-5 (logits) and 1e-5 (states, loss, gradients) for CPU
 * against HF on CPU. On the GPU, fp32 cuBLAS (TF32 off: libtorch's default, and nothing in this
 * file turns it on before the parity tests) sums in another order, so logits get 1e-4 and
 * gradients 2e-5; greedy ids stay exact. The train-step tests come last in this file because the
 * trainer turns TF32 on for the process, as torch.backends.cuda.matmul.allow_tf32 = True would.
 */
import { describe, expect, it } from 'vitest';
import { native } from '../lib/native/index.js';
import { ProcessGroup } from '../lib/parallel/process-group.js';
import { freePort } from '../lib/parallel/launch.js';
import { T5Model } from '../lib/model/t5-model.js';
import { readSafetensors } from '../lib/model/safetensors.js';
import type { Tensor } from '../lib/model/tensor.js';
import { collate, tokenizeDataset, TrainEngine } from '../lib/train/index.js';
import { T5_CASES, fixtureDir, maxAbsDiff } from './helpers/fixtures.js';
import { reversalTask, tinyConfig, toyTokenizer } from './helpers/train-fixtures.js';

const info = native().runtime.info();
const hasCuda = info.cudaAvailable;
if (!hasCuda) console.info(`model CUDA tests skipped: no GPU visible to this libtorch (cudaAvailable=${info.cudaAvailable})`);

describe.skipIf(!hasCuda).each(T5_CASES)('HF parity on CUDA: %s', (name) => {
  it('logits, encoder states, loss, every gradient and greedy ids match HF (computed on CPU)', async () => {
    const dir = fixtureDir(name);
    const ref = (await readSafetensors(`${dir}/reference.safetensors`)).tensors as Record<string, Tensor>;
    const model = await T5Model.load(dir, { device: 'cuda' });
    try {
      expect(model.info().device).toMatch(/^cuda/);
      const out = await model.forward(
        { inputIds: ref.input_ids!, attentionMask: ref.attention_mask!, labels: ref.labels! },
        { returnLogits: true, returnEncoderHidden: true, backward: true },
      );
      expect(maxAbsDiff(out.logits!.data, ref.logits!.data as Float32Array)).toBeLessThan(1e-4);
      expect(maxAbsDiff(out.encoderHidden!.data, ref.encoder_hidden!.data as Float32Array)).toBeLessThan(2e-5);
      expect(Math.abs(out.loss! - (ref.loss!.data as Float32Array)[0]!)).toBeLessThan(1e-5);
      for (const n of model.parameterNames()) {
        expect(maxAbsDiff(model.getGradient(n)!.data, ref[`grad.${n}`]!.data as Float32Array), n).toBeLessThan(2e-5);
      }
      const gen = await model.generate({ inputIds: ref.input_ids!, attentionMask: ref.attention_mask! }, { maxNewTokens: 8 });
      expect(Array.from(gen.data)).toEqual(Array.from(ref.generated!.data as Int32Array));
    } finally {
      model.dispose();
    }
  });
});

describe.skipIf(!hasCuda)('generation and precision on CUDA', () => {
  const dir = () => fixtureDir(T5_CASES[0]);

  it('seeded sampling repeats itself; different seeds differ', async () => {
    const model = await T5Model.load(dir(), { device: 'cuda' });
    const ref = (await readSafetensors(`${dir()}/reference.safetensors`)).tensors as Record<string, Tensor>;
    const batch = { inputIds: ref.input_ids!, attentionMask: ref.attention_mask! };
    const opts = { doSample: true, temperature: 1.5, topK: 0, maxNewTokens: 16, numReturnSequences: 4 };
    const a = await model.generate(batch, { ...opts, seed: 7 });
    const b = await model.generate(batch, { ...opts, seed: 7 });
    const c = await model.generate(batch, { ...opts, seed: 8 });
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
    expect(Array.from(a.data)).not.toEqual(Array.from(c.data));
    model.dispose();
  });

  it('bfloat16 and float16 forwards stay near float32', async () => {
    const ref = (await readSafetensors(`${dir()}/reference.safetensors`)).tensors as Record<string, Tensor>;
    const batch = { inputIds: ref.input_ids!, attentionMask: ref.attention_mask!, labels: ref.labels! };
    const fp32 = (ref.loss!.data as Float32Array)[0]!;
    for (const dtype of ['bfloat16', 'float16'] as const) {
      const model = await T5Model.load(dir(), { device: 'cuda', dtype });
      const out = await model.forward(batch);
      expect(Math.abs(out.loss! - fp32) / fp32, dtype).toBeLessThan(2e-2);
      model.dispose();
    }
  });
});

describe.skipIf(!hasCuda)('NCCL process group (one rank: this machine has one GPU)', () => {
  it('joins with backend nccl and all-reduces on the GPU', async () => {
    const pg = await ProcessGroup.init({ rank: 0, worldSize: 1, masterPort: await freePort(), backend: 'nccl', timeoutMs: 30_000, env: {} });
    try {
      expect(pg.backend).toBe('nccl');
      expect(pg.device).toBe('cuda:0');
      expect(pg.transport).toBe('nccl');
      const r = await pg.allreduceNumbers([1.5, -2, 3]);
      expect(r).toEqual([1.5, -2, 3]);
      await pg.barrier();
    } finally {
      await pg.destroy();
    }
  });
});

describe.skipIf(!hasCuda)('train step on CUDA (turns TF32 on: keep last)', () => {
  const tokenizer = toyTokenizer();
  const data = tokenizeDataset(reversalTask(16, 5, 2, 6), tokenizer, { maxSourceLength: 16, maxTargetLength: 16 });
  const batch = collate(data.examples.slice(0, 8), tokenizer.padId);
  const config = tinyConfig({ vocabSize: tokenizer.vocabSize, dropout: 0 });

  async function losses(device: 'cpu' | 'cuda', bf16: boolean, steps: number): Promise<number[]> {
    const model = await T5Model.fromConfig(config, { seed: 3, device });
    const engine = await TrainEngine.create(model, { learning_rate: 3e-3, weight_decay: 0.01, max_grad_norm: 1, seed: 1, bf16 });
    const out: number[] = [];
    for (let i = 0; i < steps; i++) out.push((await engine.step([batch])).loss);
    engine.dispose();
    model.dispose();
    return out;
  }

  it('float32 (TF32 matmuls) follows the CPU run step for step', async () => {
    const [cpu, gpu] = [await losses('cpu', false, 5), await losses('cuda', false, 5)];
    for (let i = 0; i < cpu.length; i++) expect(Math.abs(gpu[i]! - cpu[i]!) / cpu[i]!, `step ${i + 1}`).toBeLessThan(5e-3);
  });

  it('bf16 autocast with fp32 masters learns (loss falls) and stays near the float32 run', async () => {
    const [fp32, mixed] = [await losses('cuda', false, 30), await losses('cuda', true, 30)];
    expect(mixed.every(Number.isFinite)).toBe(true);
    expect(mixed[29]!).toBeLessThan(0.5 * mixed[0]!);
    expect(Math.abs(mixed[29]! - fp32[29]!) / fp32[29]!).toBeLessThan(0.25);
  });

  it('takes host batches; a CPU mentor with a CUDA student is refused, naming both devices', async () => {
    const student = await T5Model.fromConfig(config, { seed: 3, device: 'cuda' });
    const mentor = await T5Model.fromConfig(config, { seed: 4, device: 'cpu' });
    await expect(TrainEngine.create(student, { learning_rate: 1e-3, mentor })).rejects.toThrow(/the mentor is on cpu but the student is on cuda/);
    const engine = await TrainEngine.create(student, { learning_rate: 1e-3 });
    const r = await engine.step([batch]); // collate() builds host tensors
    expect(Number.isFinite(r.loss)).toBe(true);
    engine.dispose();
    student.dispose();
    mentor.dispose();
  });
});

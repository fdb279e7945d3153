/**
 * The native train step: loss and gradient against the HF-exact model, the AdamW update, weight
 * decay exemptions, schedules, gradient accumulation by real token count, dropout on/off, bad
 * input, and the event loop staying free while a step runs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensors } from '../lib/model/safetensors.js';
import { T5Model } from '../lib/model/t5-model.js';
import { collate, tokenizeDataset, TrainEngine, type CollatedBatch } from '../lib/train/index.js';
import { reversalTask, tinyConfig, tinyModel, toyTokenizer } from './helpers/train-fixtures.js';

const tokenizer = toyTokenizer();
const dataset = tokenizeDataset(reversalTask(12, 21, 2, 6), tokenizer, { maxSourceLength: 16, maxTargetLength: 16 });
const rows = (from: number, to: number): CollatedBatch => collate(dataset.examples.slice(from, to), tokenizer.padId);

async function snapshot(model: T5Model): Promise<Map<string, Float32Array>> {
  return new Map(model.parameterNames().map((n) => [n, model.getParameter(n).data.slice()]));
}

describe('train step numerics', () => {
  it('loss and gradient match the HF-exact forward/backward; the first AdamW update is exact', async () => {
    const model = await tinyModel({ vocabSize: 50, dropout: 0, seed: 2 });
    const batch = rows(0, 4);
    const ref = await model.forward(batch, { backward: true });
    let sq = 0;
    const grads = new Map<string, Float32Array>();
    for (const n of model.parameterNames()) {
      const g = model.getGradient(n)!.data;
      grads.set(n, g.slice());
      for (const x of g) sq += x * x;
    }
    model.zeroGrad();
    const before = await snapshot(model);
    const lr = 1e-3,
      wd = 0.1;
    const engine = await TrainEngine.create(model, { learning_rate: lr, weight_decay: wd, max_grad_norm: 0, seed: 1 });
    const r = await engine.step([batch]);
    expect(r.loss).toBeCloseTo(ref.loss!, 5);
    expect(r.tokens).toBe(ref.numLossTokens);
    expect(r.gradNorm / Math.sqrt(sq)).toBeCloseTo(1, 5);
    expect(r.step).toBe(1);
    expect(r.status).toBe('ok');
    // Step 1 of AdamW: m̂ = g, v̂ = g², so p ← p·(1 − lr·wd) − lr·g/(|g| + ε), decay skipped for norms and biases.
    const exempt = new Set(engine.info().noDecayParameters);
    let worst = 0;
    for (const n of model.parameterNames()) {
      const p0 = before.get(n)!,
        g = grads.get(n)!,
        p1 = model.getParameter(n).data;
      const decay = exempt.has(n) ? 1 : 1 - lr * wd;
      for (let i = 0; i < p0.length; i++) worst = Math.max(worst, Math.abs(p0[i]! * decay - (lr * g[i]!) / (Math.abs(g[i]!) + 1e-8) - p1[i]!));
    }
    expect(worst).toBeLessThan(1e-6);
    engine.dispose();
  });

  it('clips the gradient to max_grad_norm (the update shrinks accordingly on step 2)', async () => {
    const a = await tinyModel({ vocabSize: 50, dropout: 0, seed: 2 });
    const b = await tinyModel({ vocabSize: 50, dropout: 0, seed: 2 });
    const ea = await TrainEngine.create(a, { learning_rate: 1e-3, max_grad_norm: 0, seed: 1 });
    const eb = await TrainEngine.create(b, { learning_rate: 1e-3, max_grad_norm: 0.5, seed: 1 });
    const [ra, rb] = [await ea.step([rows(0, 4)]), await eb.step([rows(0, 4)])];
    expect(ra.gradNorm).toBeGreaterThan(0.5);
    expect(rb.gradNorm).toBeCloseTo(ra.gradNorm, 4); // reported before clipping
    // Step 1 of Adam is scale-invariant; from step 2 on the clipped run's moments differ.
    const [sa, sb] = [await ea.step([rows(4, 8)]), await eb.step([rows(4, 8)])];
    expect(sa.loss).toBeCloseTo(sb.loss, 4);
    const diff = Math.abs(a.getParameter('lm_head.weight').data[0]! - b.getParameter('lm_head.weight').data[0]!);
    expect(diff).toBeGreaterThan(0);
  });

  it('exempts norm weights and relative_attention_bias from weight decay (HF Trainer rule)', async () => {
    const model = await tinyModel({ vocabSize: 50 });
    const engine = await TrainEngine.create(model, { weight_decay: 0.01 });
    const { decayParameters, noDecayParameters } = engine.info();
    expect(noDecayParameters.length).toBeGreaterThan(0);
    for (const n of noDecayParameters) expect(n).toMatch(/layer_norm|relative_attention_bias/);
    for (const n of decayParameters) expect(n).not.toMatch(/norm|bias/);
    expect(decayParameters.length + noDecayParameters.length).toBe(model.parameterNames().length);
    expect(decayParameters).toContain('lm_head.weight');
  });

  it('gradient accumulation normalises by the real token count across micro-batches', async () => {
    // Two micro-batches with different token counts vs their union in one batch.
    const [a, b] = [rows(0, 2), rows(2, 6)];
    const union = rows(0, 6);
    const m1 = await tinyModel({ vocabSize: 50, dropout: 0, seed: 3 });
    const m2 = await tinyModel({ vocabSize: 50, dropout: 0, seed: 3 });
    const e1 = await TrainEngine.create(m1, { learning_rate: 1e-3, seed: 1 });
    const e2 = await TrainEngine.create(m2, { learning_rate: 1e-3, seed: 1 });
    const la = await e1.evaluateLoss([a]);
    const lb = await e1.evaluateLoss([b]);
    expect(la.tokens).not.toBe(lb.tokens);
    const acc = await e1.step([a, b]);
    const one = await e2.step([union]);
    expect(acc.tokens).toBe(one.tokens);
    expect(acc.loss).toBeCloseTo(one.loss, 5);
    expect(acc.loss).toBeCloseTo((la.loss * la.tokens + lb.loss * lb.tokens) / (la.tokens + lb.tokens), 5);
    expect(Math.abs(acc.loss - (la.loss + lb.loss) / 2)).toBeGreaterThan(1e-3); // not a mean of means
    expect(acc.gradNorm).toBeCloseTo(one.gradNorm, 4);
    let worst = 0;
    for (const n of m1.parameterNames()) {
      const x = m1.getParameter(n).data,
        y = m2.getParameter(n).data;
      for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
    }
    expect(worst).toBeLessThan(1e-5);
  });

  it('tied heads train through the same fused loss (d_model^-0.5 rescale)', async () => {
    const model = await tinyModel({ vocabSize: 50, dropout: 0, tied: true, seed: 4 });
    const ref = await model.forward(rows(0, 3));
    const engine = await TrainEngine.create(model, { learning_rate: 1e-3 });
    expect((await engine.evaluateLoss([rows(0, 3)])).loss).toBeCloseTo(ref.loss!, 5);
    const first = await engine.step([rows(0, 3)]);
    for (let i = 0; i < 5; i++) await engine.step([rows(0, 3)]);
    expect((await engine.evaluateLoss([rows(0, 3)])).loss).toBeLessThan(first.loss);
  });
});

describe('schedules', () => {
  it('constant, linear and cosine with warmup follow HF get_*_schedule_with_warmup', async () => {
    const model = await tinyModel({ vocabSize: 50 });
    const lr = 1e-3,
      W = 10,
      N = 100;
    const constant = await TrainEngine.create(model, { learning_rate: lr, lr_scheduler_type: 'constant' });
    const constantW = await TrainEngine.create(model, { learning_rate: lr, lr_scheduler_type: 'constant', warmup_steps: W });
    const linear = await TrainEngine.create(model, { learning_rate: lr, lr_scheduler_type: 'linear', warmup_steps: W, max_steps: N });
    const cosine = await TrainEngine.create(model, { learning_rate: lr, lr_scheduler_type: 'cosine', warmup_steps: W, max_steps: N });
    const warm = (t: number) => t / W;
    for (const t of [0, 1, 5, 9, 10, 11, 50, 99, 100, 120]) {
      expect(constant.lrAt(t)).toBe(lr);
      expect(constantW.lrAt(t)).toBeCloseTo(t < W ? lr * warm(t) : lr, 12);
      const lin = t < W ? warm(t) : Math.max(0, (N - t) / (N - W));
      expect(linear.lrAt(t)).toBeCloseTo(lr * lin, 12);
      const cos = t < W ? warm(t) : Math.max(0, 0.5 * (1 + Math.cos(Math.PI * ((t - W) / (N - W)))));
      expect(cosine.lrAt(t)).toBeCloseTo(lr * cos, 12);
    }
    // The step reports the lr it applied: step t uses lrAt(t).
    const m = await tinyModel({ vocabSize: 50, dropout: 0 });
    const e = await TrainEngine.create(m, { learning_rate: lr, lr_scheduler_type: 'linear', warmup_steps: 2, max_steps: 4 });
    const applied = [];
    for (let i = 0; i < 4; i++) applied.push((await e.step([rows(0, 2)])).lr);
    expect(applied).toEqual([0, lr / 2, lr, lr / 2]);
  });

  it('rejects schedules that cannot work', async () => {
    const model = await tinyModel({ vocabSize: 50 });
    await expect(TrainEngine.create(model, { lr_scheduler_type: 'linear' })).rejects.toThrow(/'linear' needs max_steps > 0/);
    await expect(TrainEngine.create(model, { lr_scheduler_type: 'cosine', warmup_steps: 20, max_steps: 10 })).rejects.toThrow(
      /warmup_steps \(20\) exceeds max_steps/,
    );
    await expect(TrainEngine.create(model, { lr_scheduler_type: 'step' as never })).rejects.toThrow(/unknown kind 'step'/);
    await expect(TrainEngine.create(model, { learning_rate: -1 })).rejects.toThrow(/learning_rate must be a finite number >= 0/);
    await expect(TrainEngine.create(model, { adam_beta2: 1 })).rejects.toThrow(/adam_beta2 must be in \[0, 1\)/);
    await expect(TrainEngine.create(model, { lambda: 2 })).rejects.toThrow(/lambda must be in \[0, 1\]/);
  });
});

describe('dropout', () => {
  it('is on in training steps and off in evaluation; seeded runs repeat exactly', async () => {
    const run = async (seed: number) => {
      const m = await tinyModel({ vocabSize: 50, dropout: 0.1, seed: 6 });
      const e = await TrainEngine.create(m, { learning_rate: 1e-3, seed });
      const eval1 = await e.evaluateLoss([rows(0, 4)]);
      const eval2 = await e.evaluateLoss([rows(0, 4)]);
      const ref = await m.forward(rows(0, 4)); // HF eval mode
      const step = await e.step([rows(0, 4)]);
      return { eval1: eval1.loss, eval2: eval2.loss, ref: ref.loss!, step: step.loss };
    };
    const a = await run(1),
      b = await run(1),
      c = await run(2);
    expect(a.eval1).toBe(a.eval2);
    expect(a.eval1).toBeCloseTo(a.ref, 5);
    expect(a.step).not.toBeCloseTo(a.eval1, 4); // dropout changed the training forward
    expect(b.step).toBe(a.step); // same seed, same masks
    expect(c.step).not.toBe(a.step);
  });
});

describe('low-precision weights (the GPU bf16 path, exercised on CPU)', () => {
  it('a bf16 student keeps fp32 master weights in AdamW and resumes exactly, with a bf16 online mentor', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mentor-kd-bf16-'));
    try {
      const make = () => T5Model.fromConfig(tinyConfig({ vocabSize: 50, dropout: 0.1 }), { seed: 1, dtype: 'bfloat16' });
      const mentor = await T5Model.fromConfig(tinyConfig({ vocabSize: 50, dropout: 0.1 }), { seed: 2, dtype: 'bfloat16' });
      const a = await make();
      const ea = await TrainEngine.create(a, { learning_rate: 3e-3, seed: 1, mentor, lambda: 0.5 });
      const losses: number[] = [];
      for (let i = 0; i < 6; i++) {
        const r = await ea.step([rows(0, 8)]);
        losses.push(r.loss);
        expect(r.kl).toBeGreaterThan(0);
        if (i === 2) await ea.saveCheckpoint(join(dir, 'ck'));
      }
      expect(losses[5]!).toBeLessThan(losses[0]!);
      const opt = await readSafetensors(join(dir, 'ck', 'optimizer.safetensors'));
      const masters = Object.keys(opt.tensors).filter((k) => k.startsWith('master.'));
      expect(masters).toHaveLength(a.parameterNames().length);
      expect(opt.tensors['master.lm_head.weight']!.dtype).toBe('float32');
      // The bf16 model is the master rounded to bf16, and the update accumulated below bf16 resolution.
      const master = opt.tensors['master.lm_head.weight']!.data as Float32Array;
      const b = await make();
      const eb = await TrainEngine.create(b, { learning_rate: 3e-3, seed: 99, mentor, lambda: 0.5 });
      expect(await eb.loadCheckpoint(join(dir, 'ck'))).toBe(3);
      const rounded = b.getParameter('lm_head.weight').data;
      let offGrid = 0;
      for (let i = 0; i < master.length; i++) {
        expect(Math.abs(rounded[i]! - master[i]!)).toBeLessThanOrEqual(Math.abs(master[i]!) * 2 ** -8);
        if (rounded[i] !== master[i]) offGrid++;
      }
      expect(offGrid).toBeGreaterThan(0);
      for (let i = 3; i < 6; i++) expect((await eb.step([rows(0, 8)])).loss).toBe(losses[i]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('bf16 autocast on CPU (bf16, opt-in there)', () => {
  it('is off by default; on, it runs the transformer in bf16 with fp32 weights, tracks the fp32 run and learns', async () => {
    const run = async (cpuAutocast: boolean | undefined, steps: number) => {
      const model = await tinyModel({ vocabSize: 50, dropout: 0, seed: 2 });
      const engine = await TrainEngine.create(model, { learning_rate: 3e-3, seed: 1, ...(cpuAutocast === undefined ? {} : { bf16: cpuAutocast }) });
      const info = engine.info();
      const losses: number[] = [];
      for (let i = 0; i < steps; i++) losses.push((await engine.step([rows(0, 8)])).loss);
      const dtype = model.info().dtype;
      engine.dispose();
      model.dispose();
      return { info, losses, dtype };
    };
    const [byDefault, fp32, bf16] = [await run(undefined, 2), await run(false, 12), await run(true, 12)];
    expect(byDefault.info.bf16).toBe(false);
    expect(byDefault.losses).toEqual(fp32.losses.slice(0, 2)); // default = off, bit for bit
    expect(bf16.info.bf16).toBe(true);
    expect(bf16.dtype).toBe('float32'); // the weights stay fp32
    expect(bf16.losses[0]).not.toBe(fp32.losses[0]); // it did run in bf16...
    for (let i = 0; i < 12; i++) expect(Math.abs(bf16.losses[i]! - fp32.losses[i]!) / fp32.losses[i]!, `step ${i + 1}`).toBeLessThan(0.05);
    expect(bf16.losses[11]!).toBeLessThan(0.7 * bf16.losses[0]!); // ...and learns
  });
});

describe('bad input', () => {
  it('names the offending micro-batch, field or model', async () => {
    const model = await tinyModel({ vocabSize: 50 });
    const engine = await TrainEngine.create(model, {});
    const b = rows(0, 2);
    const noLabels = { ...b, labels: undefined } as unknown as CollatedBatch;
    await expect(engine.step([b, noLabels])).rejects.toThrow(/microBatches\[1\]\.labels is required/);
    const ignored = { ...b, labels: { data: new Int32Array(b.labels.data.length).fill(-100), shape: b.labels.shape } };
    await expect(engine.step([ignored])).rejects.toThrow(/no target tokens/);
    const outOfRange = { ...b, inputIds: { data: b.inputIds.data.map(() => 999), shape: b.inputIds.shape } };
    await expect(engine.step([outOfRange])).rejects.toThrow(/microBatches\[0\]: .*inputIds/);
    await expect(engine.step([])).rejects.toThrow(/microBatches is empty/);
    expect(engine.globalStep).toBe(0);
    const other = await T5Model.fromConfig(tinyConfig({ vocabSize: 60 }));
    await expect(TrainEngine.create(model, { mentor: other })).rejects.toThrow(/mentor has vocab_size 60 but the student has 50/);
    await expect(TrainEngine.create(model, { mentor: model })).rejects.toThrow(/mentor must be a different model/);
    engine.dispose();
    expect(() => engine.globalStep).toThrow(/used after dispose/);
  });
});

describe('event loop', () => {
  it('stays responsive while a step runs on a worker thread', async () => {
    const model = await T5Model.fromConfig({ ...tinyConfig({ vocabSize: 300, dModel: 128, layers: 3 }), d_ff: 512 }, { seed: 1 });
    const engine = await TrainEngine.create(model, { learning_rate: 1e-4 });
    const long = tokenizeDataset(
      Array.from({ length: 32 }, (_, i) => ({
        source: `reverse: ${'a b c d e f g h '.repeat(8)}`,
        target: 'h g f e d c b a '.repeat(8) + String(i % 2 ? 'a' : 'b'),
      })),
      tokenizer,
      { maxSourceLength: 128, maxTargetLength: 128 },
    );
    const batch = collate(long.examples, tokenizer.padId);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 2);
    const t0 = performance.now();
    await engine.step([batch]);
    const ms = performance.now() - t0;
    clearInterval(timer);
    expect(ms).toBeGreaterThan(20);
    expect(ticks).toBeGreaterThan(ms / 2 / 10); // at least a tenth of the ideal tick count
  });
});

describe('KD objective (divergence, beta, alpha) through the engine', () => {
  it('reaches the native Trainer: info reports it, jsd beta=0 is forward KL bit for bit, others differ; bad values name the field', async () => {
    const mentor = await T5Model.fromConfig(tinyConfig({ vocabSize: 50, dropout: 0 }), { seed: 2 });
    const run = async (o: { divergence?: 'forward-kl' | 'reverse-kl' | 'jsd' | 'skew-kl' | 'skew-reverse-kl' | 'tvd'; beta?: number; alpha?: number }) => {
      const model = await tinyModel({ vocabSize: 50, dropout: 0, seed: 3 });
      const engine = await TrainEngine.create(model, { learning_rate: 1e-3, seed: 1, mentor, lambda: 0.5, ...o });
      const info = engine.info();
      const r = await engine.step([rows(0, 4)]);
      engine.dispose();
      model.dispose();
      return { info, kl: r.kl, loss: r.loss };
    };
    const fwd = await run({});
    expect(fwd.info).toMatchObject({ divergence: 'forward-kl', beta: 0.5, alpha: 0.1 });
    const jsd0 = await run({ divergence: 'jsd', beta: 0 });
    expect(jsd0.info).toMatchObject({ divergence: 'jsd', beta: 0 });
    expect(jsd0.loss).toBe(fwd.loss);
    const kls = new Set([fwd.kl]);
    for (const o of [{ divergence: 'reverse-kl' }, { divergence: 'jsd', beta: 0.5 }, { divergence: 'skew-kl', alpha: 0.1 }, { divergence: 'tvd' }] as const) {
      const r = await run(o);
      expect(r.info.divergence).toBe(o.divergence);
      expect(Number.isFinite(r.kl) && r.kl > 0).toBe(true);
      kls.add(r.kl);
    }
    expect(kls.size).toBe(5);
    const model = await tinyModel({ vocabSize: 50 });
    await expect(TrainEngine.create(model, { divergence: 'jsd', beta: 2 })).rejects.toThrow(/beta must be in \[0, 1\], got 2/);
    await expect(TrainEngine.create(model, { divergence: 'skew-kl', alpha: 1 })).rejects.toThrow(/alpha must be in \[0, 1\), got 1/);
    await expect(TrainEngine.create(model, { divergence: 'kl' as never })).rejects.toThrow(/option 'divergence' must be one of forward-kl/);
  });
});

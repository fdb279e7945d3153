/**
 * The KD loss's divergences (issue 14): forward-kl, reverse-kl, jsd(β), skew-kl(α),
 * skew-reverse-kl(α), tvd — fused full, top-k and linear forms against the unfused libtorch
 * composition of each definition (native/dev/kd_reference.cc), float64 central differences,
 * top-k with k = V = full, linear = full, and bad settings rejected naming the field.
 */
import { describe, expect, it } from 'vitest';
import { kdSettingsSchema } from '../lib/config/train-settings.js';
import { kdLoss, kdLossLinear, kdLossTopK, topkSoftLabels } from '../lib/kd/index.js';
import type { KdDivergence, KdLossOptions } from '../lib/kd/index.js';
import type { NativeTensor } from '../lib/native/binding.js';
import { expectClose, expectNear, kdLossDev, kdLossTopKDev, makeCase, numericGrad, rng, topkCase } from './kd-helpers.js';

function f(t: NativeTensor | undefined): Float32Array | Float64Array {
  if (!t) throw new Error('missing tensor');
  return t.data as Float32Array | Float64Array;
}

/** Every (divergence, β/α) the brief asks for: β ∈ {0, .1, .5, .9, 1}, α ∈ {0, .1, .5, .9}. */
const OBJECTIVES: KdLossOptions[] = [
  { divergence: 'forward-kl' },
  { divergence: 'reverse-kl' },
  ...[0, 0.1, 0.5, 0.9, 1].map((beta) => ({ divergence: 'jsd' as const, beta })),
  ...[0, 0.1, 0.5, 0.9].map((alpha) => ({ divergence: 'skew-kl' as const, alpha })),
  ...[0, 0.1, 0.5, 0.9].map((alpha) => ({ divergence: 'skew-reverse-kl' as const, alpha })),
  { divergence: 'tvd' },
];
const name = (o: KdLossOptions) => `${o.divergence}${o.beta !== undefined ? ` beta=${o.beta}` : ''}${o.alpha !== undefined ? ` alpha=${o.alpha}` : ''}`;

describe('every divergence = its unfused composition (full)', () => {
  // V not a multiple of 8, and a V spanning several 2048-wide blocks with late maxima.
  const shapes = [
    { N: 5, V: 1003, spike: false },
    { N: 4, V: 5001, spike: true },
  ];
  for (const obj of OBJECTIVES) {
    for (const dtype of ['float32', 'bfloat16'] as const) {
      it(`${name(obj)} ${dtype}: tau 1/2/4 x lambda 0/0.3/1, ignored rows`, async () => {
        for (const tau of [1, 2, 4]) {
          for (const lambda of [0, 0.3, 1]) {
            for (const [si, sh] of shapes.entries()) {
              const c = makeCase(sh.N, sh.V, { seed: 7 + tau * 10 + lambda * 100 + si, ignored: [1, 3], spike: sh.spike });
              const o: KdLossOptions = { ...obj, tau, lambda, studentDtype: dtype };
              const [a, b] = await Promise.all([
                kdLoss(c.student, c.mentor, c.labels, o),
                kdLossDev(c.student, c.mentor, c.labels, { ...o, impl: 'reference' }),
              ]);
              const what = `tau=${tau} lambda=${lambda} V=${sh.V}`;
              expectNear(a.loss, b.loss, 5e-5, 2e-6, `${what} loss`);
              expectNear(a.kl, b.kl, 5e-5, 2e-6, `${what} D`);
              expectClose(f(a.grad), f(b.grad), dtype === 'float32' ? 5e-5 : 1e-2, 1e-7, `${what} grad`);
            }
          }
        }
      });
    }
  }

  it('reductions sum / batchmean and tau² for every divergence', async () => {
    const c = makeCase(6, 301, { seed: 5, ignored: [0, 4] });
    for (const obj of OBJECTIVES) {
      for (const extra of [{ reduction: 'sum' }, { reduction: 'batchmean', tauSquared: true }] as KdLossOptions[]) {
        const o = { ...obj, ...extra, tau: 2, lambda: 0.3 };
        const [a, b] = await Promise.all([kdLoss(c.student, c.mentor, c.labels, o), kdLossDev(c.student, c.mentor, c.labels, { ...o, impl: 'reference' })]);
        expectNear(a.loss, b.loss, 5e-5, 1e-6, `${name(obj)} ${JSON.stringify(extra)} loss`);
        expectClose(f(a.grad), f(b.grad), 5e-5, 1e-7, `${name(obj)} ${JSON.stringify(extra)} grad`);
      }
    }
  });

  it('the ends of beta/alpha are the named KLs exactly (TRL: jsd beta=0 forward, beta=1 reverse)', async () => {
    const c = makeCase(3, 257, { seed: 9 });
    const run = (o: KdLossOptions) => kdLoss(c.student, c.mentor, c.labels, { ...o, tau: 2 });
    const fwd = await run({ divergence: 'forward-kl' });
    const rev = await run({ divergence: 'reverse-kl' });
    for (const [o, ref] of [
      [{ divergence: 'jsd', beta: 0 }, fwd],
      [{ divergence: 'jsd', beta: 1 }, rev],
      [{ divergence: 'skew-kl', alpha: 0 }, fwd],
      [{ divergence: 'skew-reverse-kl', alpha: 0 }, rev],
    ] as [KdLossOptions, typeof fwd][]) {
      const a = await run(o);
      expect(a.loss).toBe(ref.loss);
      expect(Array.from(f(a.grad))).toEqual(Array.from(f(ref.grad)));
    }
    // and inside (0,1) JSD is bounded by log 2 per row and symmetric at beta = 0.5
    const j = await run({ divergence: 'jsd', beta: 0.5 });
    expect(j.kl).toBeGreaterThan(0);
    expect(j.kl).toBeLessThan(Math.log(2));
    const swapped = await kdLoss(c.mentor, c.student, c.labels, { divergence: 'jsd', beta: 0.5, tau: 2 });
    expectNear(swapped.kl, j.kl, 1e-5, 0, 'jsd(0.5) symmetric');
  });

  it('masked mentor entries (-1e4): log-ratios stay exact, no Inf/NaN', async () => {
    const c = makeCase(3, 300, { seed: 13, f64: false });
    const m = Float32Array.from(c.mentor.data as Float32Array);
    for (let i = 0; i < m.length; i += 7) m[i] = -1e4;
    const mentor = { data: m, shape: c.mentor.shape };
    for (const obj of OBJECTIVES) {
      const o = { ...obj, tau: 1, lambda: 0.5 };
      const a = await kdLoss(c.student, mentor, c.labels, o);
      const b = await kdLossDev(
        { data: Float64Array.from(f(c.student)), shape: c.student.shape },
        { data: Float64Array.from(m), shape: c.mentor.shape },
        c.labels,
        {
          ...o,
          impl: 'reference',
        },
      );
      expect(Number.isFinite(a.loss)).toBe(true);
      expectNear(a.loss, b.loss, 1e-4, 1e-5, `${name(obj)} masked loss`);
      expectClose(f(a.grad), f(b.grad), 1e-4, 1e-6, `${name(obj)} masked grad`);
    }
  });
});

describe('float64 central differences (every divergence)', () => {
  it('full', async () => {
    const c = makeCase(3, 7, { seed: 31, ignored: [1], f64: true });
    for (const obj of OBJECTIVES) {
      for (const o of [
        { ...obj, tau: 2, lambda: 0.3 },
        { ...obj, tau: 0.7, lambda: 1, reduction: 'batchmean' },
      ] as KdLossOptions[]) {
        const r = await kdLoss(c.student, c.mentor, c.labels, o);
        expect(r.grad!.data).toBeInstanceOf(Float64Array);
        const num = await numericGrad(async (s) => (await kdLoss(s, c.mentor, c.labels, { ...o, returnGrad: false })).loss, c.student);
        expectClose(f(r.grad), num, 1e-6, 1e-9, `${name(obj)} analytic vs numeric`);
        const ref = await kdLossDev(c.student, c.mentor, c.labels, { ...o, impl: 'reference' });
        expectNear(r.loss, ref.loss, 1e-11, 1e-14, `${name(obj)} f64 loss`);
        expectClose(f(r.grad), f(ref.grad), 1e-9, 1e-14, `${name(obj)} f64 grad`);
      }
    }
  });

  it('top-k (rest bucket, padding entry, explicit restMass)', async () => {
    const { c, topk, withRest } = await topkCase();
    for (const obj of OBJECTIVES) {
      for (const tk of [topk, withRest]) {
        const o = { ...obj, tau: 2, lambda: 0.6 };
        const r = await kdLossTopK(c.student, tk, c.labels, o);
        const num = await numericGrad(async (s) => (await kdLossTopK(s, tk, c.labels, { ...o, returnGrad: false })).loss, c.student);
        expectClose(f(r.grad), num, 1e-6, 1e-9, `${name(obj)} topk analytic vs numeric`);
        const ref = await kdLossTopKDev(c.student, tk, c.labels, { ...o, impl: 'reference' });
        expectNear(r.loss, ref.loss, 1e-11, 1e-14, `${name(obj)} topk f64 loss`);
        expectClose(f(r.grad), f(ref.grad), 1e-9, 1e-14, `${name(obj)} topk f64 grad`);
      }
    }
  });
});

describe('top-k and linear forms (every divergence)', () => {
  it('top-k with k = V equals the full op; k < V equals the unfused top-k composition', async () => {
    const c = makeCase(4, 203, { seed: 51, ignored: [3] });
    const cs = makeCase(5, 2501, { seed: 61, ignored: [0], spike: true });
    for (const tau of [1, 2]) {
      const full = await topkSoftLabels(c.mentor, 203, tau);
      const part = await topkSoftLabels(cs.mentor, 17, tau);
      for (const obj of OBJECTIVES) {
        const o = { ...obj, tau, lambda: 0.3 };
        const a = await kdLossTopK(c.student, full, c.labels, o);
        const b = await kdLoss(c.student, c.mentor, c.labels, o);
        expectNear(a.loss, b.loss, 2e-5, 1e-6, `${name(obj)} tau=${tau} k=V loss`);
        expectClose(f(a.grad), f(b.grad), 5e-5, 1e-7, `${name(obj)} tau=${tau} k=V grad`);
        for (const studentDtype of ['float32', 'bfloat16'] as const) {
          const oo = { ...o, studentDtype };
          const x = await kdLossTopK(cs.student, part, cs.labels, oo);
          const y = await kdLossTopKDev(cs.student, part, cs.labels, { ...oo, impl: 'reference' });
          expectNear(x.loss, y.loss, 5e-5, 1e-6, `${name(obj)} tau=${tau} k=17 ${studentDtype} loss`);
          expectClose(f(x.grad), f(y.grad), studentDtype === 'float32' ? 5e-5 : 1e-2, 1e-7, `${name(obj)} k=17 ${studentDtype} grad`);
        }
      }
    }
  });

  it('fused linear equals the full op on hidden·weightᵀ (mentor logits and top-k, chunked)', async () => {
    const r = rng(71);
    const N = 7,
      d = 12,
      V = 1001;
    const h = new Float32Array(N * d).map(() => r.normal());
    const w = new Float32Array(V * d).map(() => r.normal() / Math.sqrt(d));
    const m = new Float32Array(N * V).map(() => r.normal() * 2);
    const y = new Int32Array(N).map(() => Math.floor(r.uniform() * V));
    y[2] = -100;
    // logits = h·wᵀ in float64, rounded to f32 for the full op
    const logits = new Float32Array(N * V);
    for (let i = 0; i < N; i++)
      for (let v = 0; v < V; v++) {
        let acc = 0;
        for (let k = 0; k < d; k++) acc += h[i * d + k]! * w[v * d + k]!;
        logits[i * V + v] = acc;
      }
    const hidden = { data: h, shape: [N, d] },
      weight = { data: w, shape: [V, d] },
      mentor = { data: m, shape: [N, V] },
      labels = { data: y, shape: [N] },
      student = { data: logits, shape: [N, V] };
    const topk = await topkSoftLabels(mentor, 40, 2);
    for (const obj of OBJECTIVES) {
      const o = { ...obj, tau: 2, lambda: 0.5 };
      const full = await kdLoss(student, mentor, labels, o);
      const lin = await kdLossLinear(hidden, weight, { logits: mentor }, labels, { ...o, chunkRows: 3 });
      expectNear(lin.loss, full.loss, 5e-5, 1e-6, `${name(obj)} linear loss`);
      // dL/dh = g·w
      const g = f(full.grad);
      const gh = new Float64Array(N * d);
      for (let i = 0; i < N; i++) for (let v = 0; v < V; v++) for (let k = 0; k < d; k++) gh[i * d + k]! += g[i * V + v]! * w[v * d + k]!;
      expectClose(f(lin.gradHidden), gh, 1e-4, 1e-7, `${name(obj)} linear gradHidden`);
      const fullK = await kdLossTopK(student, topk, labels, o);
      const linK = await kdLossLinear(hidden, weight, { topk }, labels, o);
      expectNear(linK.loss, fullK.loss, 5e-5, 1e-6, `${name(obj)} linear top-k loss`);
    }
  });
});

describe('bad objective settings name the field', () => {
  const c = makeCase(2, 11, { seed: 3 });
  const cases: [KdLossOptions, RegExp][] = [
    [{ divergence: 'jsd', beta: 1.5 }, /kd: beta must be in \[0, 1\], got 1.5/],
    [{ divergence: 'jsd', beta: -0.1 }, /kd: beta must be in \[0, 1\]/],
    [{ divergence: 'skew-kl', alpha: 1 }, /kd: alpha must be in \[0, 1\), got 1/],
    [{ divergence: 'skew-reverse-kl', alpha: Number.NaN }, /kd: alpha must be in \[0, 1\)/],
    [{ divergence: 'kl' as KdDivergence }, /kd: divergence must be one of forward-kl, reverse-kl, jsd, skew-kl, skew-reverse-kl, tvd, got "kl"/],
  ];
  for (const [o, msg] of cases) {
    it(JSON.stringify(o), async () => {
      await expect(kdLoss(c.student, c.mentor, c.labels, o)).rejects.toThrow(msg);
      await expect(
        kdLossTopK(
          c.student,
          { indices: { data: new Int32Array([0, 1]), shape: [2, 1] }, logprobs: { data: new Float32Array([-1, -1]), shape: [2, 1] } },
          c.labels,
          o,
        ),
      ).rejects.toThrow(msg);
    });
  }

  it('the settings schema (train() kd, the run config) rejects the same, and defaults are forward-kl, 0.5, 0.1', () => {
    expect(kdSettingsSchema.parse({})).toMatchObject({ divergence: 'forward-kl', beta: 0.5, alpha: 0.1 });
    expect(kdSettingsSchema.safeParse({ beta: 2 }).success).toBe(false);
    expect(kdSettingsSchema.safeParse({ alpha: 1 }).success).toBe(false);
    expect(kdSettingsSchema.safeParse({ divergence: 'js' }).success).toBe(false);
    expect(kdSettingsSchema.parse({ divergence: 'tvd' }).divergence).toBe('tvd');
  });
});
